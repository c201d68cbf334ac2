//! Bearer tokens: 256 random bits, stored only as a SHA-256 hash, and a
//! short-lived cache of hash → session. Entries live one second, so a token
//! revoked on any node stops working everywhere within a second.
//!
//! Tokens expire after `TOKEN_TTL` without use (sliding). A use is written
//! to the store at most once per [`touch_granularity`] per token, so the
//! hot path reads but does not write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::TokenSession;

/// How long a cached lookup is trusted.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is emptied when it is full.
const MAX_ENTRIES: usize = 65_536;
/// The coarsest a token's recorded last use may lag behind its real one.
const MAX_TOUCH_GRANULARITY: Duration = Duration::from_secs(60);
/// How often an open WebSocket records a use of its token, at most.
const MAX_SOCKET_TOUCH_EVERY: Duration = Duration::from_secs(600);

/// How stale a token's recorded last use may be before a use is written
/// again: a minute, or a quarter of `ttl` when that is shorter (so that a
/// short `TOKEN_TTL` still slides). `lastUsedAt` has this granularity.
pub fn touch_granularity(ttl: Duration) -> Duration {
    MAX_TOUCH_GRANULARITY.min(ttl / 4)
}

/// How often an open WebSocket records a use of the token it was opened
/// with (an open connection keeps its token alive): a quarter of `ttl`, at
/// most every ten minutes.
pub fn socket_touch_every(ttl: Duration) -> Duration {
    MAX_SOCKET_TOUCH_EVERY.min(ttl / 4)
}

/// Whether a token last used at `last_used_at` has expired at `now`
/// (milliseconds since the epoch) under `ttl`: unused for longer than `ttl`.
pub fn is_expired(last_used_at: i64, now: i64, ttl: Duration) -> bool {
    now.saturating_sub(last_used_at) > ttl_ms(ttl)
}

/// `ttl` in milliseconds (saturating).
pub fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// A new random token: 256 bits from the OS CSPRNG, hex-encoded.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The stored form of a token: SHA-256, hex. Tokens carry 256 bits of
/// entropy, so a fast unsalted hash is enough; the database never sees a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Recently validated tokens.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (TokenSession, Instant)>>,
}

impl TokenCache {
    /// The session of a token hash validated less than [`TOKEN_CACHE_TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<TokenSession> {
        let entries = self.entries.lock().ok()?;
        let (session, at) = entries.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| session.clone())
    }

    /// Notes that a use at `at` is being recorded, so that the other
    /// requests served from this entry do not record it again.
    pub fn used(&self, hash: &str, at: i64) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some((session, _)) = entries.get_mut(hash)
        {
            session.last_used_at = session.last_used_at.max(at);
        }
    }

    /// Remembers a valid token.
    pub fn put(&self, hash: String, user: TokenSession) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(hash, (user, Instant::now()));
        }
    }

    /// Forgets a token (revoked on this node).
    pub fn remove(&self, hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> TokenSession {
        TokenSession {
            user: missive_protocol::User {
                id: uuid::Uuid::now_v7(),
                phone_number: "+1234567890".into(),
                display_name: None,
                created_at: String::new(),
            },
            id: uuid::Uuid::now_v7(),
            created_at: 0,
            last_used_at: 0,
        }
    }

    #[test]
    fn a_token_expires_only_after_ttl_without_use() {
        let ttl = Duration::from_secs(2);
        assert!(!is_expired(1_000, 3_000, ttl));
        assert!(is_expired(1_000, 3_001, ttl));
        assert!(!is_expired(1_000, 500, ttl), "a clock behind the store");
        assert!(!is_expired(0, i64::MAX, Duration::MAX));
    }

    #[test]
    fn uses_are_recorded_at_most_once_a_minute_or_a_quarter_of_the_ttl() {
        let day = Duration::from_secs(86_400);
        assert_eq!(touch_granularity(day * 30), Duration::from_secs(60));
        assert_eq!(
            touch_granularity(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(socket_touch_every(day * 30), Duration::from_secs(600));
        assert_eq!(
            socket_touch_every(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn a_recorded_use_updates_the_cached_entry_and_never_moves_back() {
        let cache = TokenCache::default();
        cache.put("h".into(), user());
        cache.used("h", 5_000);
        assert_eq!(cache.get("h").expect("cached").last_used_at, 5_000);
        cache.used("h", 4_000);
        assert_eq!(cache.get("h").expect("cached").last_used_at, 5_000);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a), hash_token(&a));
    }

    #[test]
    fn cached_tokens_expire_and_can_be_removed() {
        let cache = TokenCache::default();
        cache.put("h".into(), user());
        assert!(cache.get("h").is_some());
        cache.remove("h");
        assert!(cache.get("h").is_none());
        cache
            .entries
            .lock()
            .expect("lock")
            .insert("old".into(), (user(), Instant::now() - TOKEN_CACHE_TTL));
        assert!(cache.get("old").is_none());
    }
}
