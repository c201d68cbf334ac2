//! Judging a try at a login code: the rule every store applies inside the
//! transaction that reads the stored code.

/// The stored login code of a phone number, as the store read it.
#[derive(Debug, Clone)]
pub struct StoredCode<'a> {
    /// Hash of the code that was sent.
    pub code_hash: &'a str,
    /// Milliseconds since the epoch when it stops working.
    pub expires_at: i64,
    /// Wrong tries so far.
    pub attempts: i64,
}

/// What a try at a code amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code matches: consume it and issue a token.
    Accept,
    /// A wrong code: count the try.
    Wrong,
    /// Expired: nothing to count.
    Expired,
    /// Burned by too many wrong tries: refuse even the right code.
    Burned,
}

/// Judges `tried_hash` against `stored` at `now` (ms), in constant time.
pub fn judge(stored: &StoredCode<'_>, tried_hash: &str, now: i64, max_attempts: i64) -> Verdict {
    if stored.attempts >= max_attempts {
        Verdict::Burned
    } else if stored.expires_at <= now {
        Verdict::Expired
    } else if constant_time_eq::constant_time_eq(stored.code_hash.as_bytes(), tried_hash.as_bytes())
    {
        Verdict::Accept
    } else {
        Verdict::Wrong
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: StoredCode<'static> = StoredCode {
        code_hash: "abc",
        expires_at: 1_000,
        attempts: 0,
    };

    #[test]
    fn the_right_code_in_time_is_accepted_and_others_are_not() {
        assert_eq!(judge(&STORED, "abc", 999, 5), Verdict::Accept);
        assert_eq!(judge(&STORED, "abd", 999, 5), Verdict::Wrong);
        assert_eq!(judge(&STORED, "abc", 1_000, 5), Verdict::Expired);
    }

    #[test]
    fn a_burned_code_refuses_even_the_right_code() {
        let burned = StoredCode {
            attempts: 5,
            ..STORED
        };
        assert_eq!(judge(&burned, "abc", 10, 5), Verdict::Burned);
    }
}
