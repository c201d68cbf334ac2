//! Accounts: registration, contact lookup, login on a new device by one-time
//! code, and logout. Every token issued keeps the caller's `User-Agent`
//! (shown in the sessions list, see [`super::sessions`]).

use missive_protocol::{Session, User};

use super::identity::parse_phone;
use super::{Caller, Error, ErrorCode, Service};
use crate::metrics::RateLimitKind;
use crate::security::codes::{CODE_TTL, MAX_ATTEMPTS, hash_code, is_well_formed, new_code};
use crate::security::tokens::{hash_token, new_token};
use crate::store::{CodeAttempt, LoginCode, NewUser, Redeemed};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// How long a client should wait after burning a code (it must request a new one).
const BURNED_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Validates a `displayName`: trims; blank means none; at most 64 printable
/// characters. Public only so that the fuzz targets (`fuzz/`) reach it.
pub fn parse_display_name(raw: Option<String>) -> Result<Option<String>, Error> {
    let Some(name) = raw.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::invalid_request(format!(
            "displayName must be at most {MAX_DISPLAY_NAME_CHARS} printable characters"
        )));
    }
    Ok(Some(name))
}

fn no_randomness(e: getrandom::Error) -> Error {
    Error::internal(format!("no randomness: {e}"))
}

fn invalid_code() -> Error {
    Error::new(ErrorCode::InvalidCode, "the code is wrong or expired")
}

impl Service {
    /// Registers a user; returns it with its first token.
    pub async fn register(
        &self,
        caller: &Caller,
        phone_number: &str,
        display_name: Option<String>,
    ) -> Result<(User, String), Error> {
        self.check_auth_rate(caller).await?;
        let phone_number = parse_phone(phone_number)?;
        let display_name = parse_display_name(display_name)?;
        let token = new_token().map_err(no_randomness)?;
        let user = self
            .store
            .create_user(NewUser {
                phone_number,
                display_name,
                token_hash: hash_token(&token),
                user_agent: caller.user_agent().map(str::to_owned),
            })
            .await?;
        Ok((user, token))
    }

    /// Finds a contact by phone number (needs a token); `rate_limited` past
    /// `LOOKUP_RATE_LIMIT` lookups a minute of the user (or 4× that of the
    /// client address).
    pub async fn lookup(&self, caller: &Caller, phone_number: Option<&str>) -> Result<User, Error> {
        let me = self.require_token(caller).await?;
        let raw =
            phone_number.ok_or_else(|| Error::invalid_parameter("phoneNumber is required"))?;
        let phone = parse_phone(raw)?;
        // Contact discovery is an enumeration risk: a budget per user and per address.
        self.limits
            .check_lookup(me.id, caller.address())
            .await
            .map_err(|wait| {
                self.metrics.rate_limits.reject(RateLimitKind::Lookup);
                Error::rate_limited(wait)
            })?;
        self.store
            .user_by_phone(&phone)
            .await?
            .ok_or_else(Error::user_not_found)
    }

    /// Sends a fresh 6-digit code to a registered number.
    pub async fn request_code(&self, caller: &Caller, phone_number: &str) -> Result<(), Error> {
        self.check_auth_rate(caller).await?;
        let phone = parse_phone(phone_number)?;
        let user = self
            .store
            .user_by_phone(&phone)
            .await?
            .ok_or_else(Error::user_not_found)?;
        // Per number, whatever the address: SMS cost and pestering the owner.
        let ticket = self
            .limits
            .charge_code(phone.as_str())
            .await
            .map_err(|wait| {
                self.metrics.rate_limits.reject(RateLimitKind::LoginCode);
                Error::rate_limited(wait)
                    .with_message("too many login codes for this number; try again later")
            })?;
        let code = new_code().map_err(no_randomness)?;
        // Deliver first: a code the user never received must not be issued
        // (nor counted against the number).
        if let Err(e) = self.codes.send(phone.as_str(), &code).await {
            self.metrics.login_codes_failed.inc();
            tracing::warn!(error = %e, "login code not delivered");
            self.limits.refund(ticket).await;
            return Err(Error::new(
                ErrorCode::CodeDeliveryFailed,
                "the login code could not be sent; try again",
            ));
        }
        self.metrics.login_codes_sent.inc();
        self.store
            .put_login_code(LoginCode {
                user: user.id,
                phone_number: phone.as_str().to_owned(),
                code_hash: hash_code(phone.as_str(), &code),
                expires_at: self.clock.now_ms() + CODE_TTL.as_millis() as i64,
            })
            .await?;
        Ok(())
    }

    /// Trades a valid code for a new token.
    pub async fn verify_code(
        &self,
        caller: &Caller,
        phone_number: &str,
        code: &str,
    ) -> Result<Session, Error> {
        self.check_auth_rate(caller).await?;
        let phone = parse_phone(phone_number)?;
        let code = code.trim();
        if !is_well_formed(code) {
            return Err(invalid_code());
        }
        // Charged before the code is checked, so that concurrent guesses
        // cannot overrun the number's budget; refunded when right. A new
        // code does not reset it, and once it is spent even the right code
        // is refused until the window moves on.
        let ticket = self
            .limits
            .charge_guess(phone.as_str())
            .await
            .map_err(|wait| {
                self.metrics.rate_limits.reject(RateLimitKind::LoginGuess);
                Error::rate_limited(wait)
                    .with_message("too many wrong codes for this number; try again later")
            })?;
        let token = new_token().map_err(no_randomness)?;
        let attempt = CodeAttempt {
            phone_number: phone.as_str().to_owned(),
            code_hash: hash_code(phone.as_str(), code),
            now: self.clock.now_ms(),
            token_hash: hash_token(&token),
            user_agent: caller.user_agent().map(str::to_owned),
            max_attempts: MAX_ATTEMPTS,
        };
        let redeemed = match self.store.redeem_login_code(attempt).await {
            Ok(redeemed) => redeemed,
            Err(e) => {
                // Nothing was checked: not a guess.
                self.limits.refund(ticket).await;
                return Err(e.into());
            }
        };
        match redeemed {
            Redeemed::Valid(user) => {
                self.limits.refund(ticket).await;
                Ok(Session { token, user })
            }
            Redeemed::Invalid => Err(invalid_code()),
            Redeemed::TooManyAttempts => {
                self.metrics.rate_limits.reject(RateLimitKind::LoginGuess);
                Err(Error::rate_limited(BURNED_RETRY_AFTER)
                    .with_message("too many wrong codes: request a new code with POST /sessions"))
            }
        }
    }

    /// Revokes the caller's token; its connections on every node close.
    pub async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        self.check_auth_rate(caller).await?;
        let me = self.require_token(caller).await?;
        if let Some(token) = caller.token() {
            let hash = hash_token(token);
            self.store.revoke_token(&hash).await?;
            self.revoked(me.id, hash, std::time::Instant::now()).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(parse_display_name(None).expect("ok"), None);
        assert_eq!(parse_display_name(Some("  ".into())).expect("ok"), None);
        assert_eq!(
            parse_display_name(Some(" Ada ".into())).expect("ok"),
            Some("Ada".into())
        );
        assert!(parse_display_name(Some("x".repeat(65))).is_err());
        assert!(parse_display_name(Some("a\u{0}b".into())).is_err());
    }
}
