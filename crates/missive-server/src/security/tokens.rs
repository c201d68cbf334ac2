//! Bearer tokens: 256 random bits, stored only as a SHA-256 hash, and a
//! short-lived cache of hash → user. Entries live one second, so a token
//! revoked on any node stops working everywhere within a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use missive_protocol::User;
use sha2::{Digest, Sha256};

/// How long a cached lookup is trusted.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is emptied when it is full.
const MAX_ENTRIES: usize = 65_536;

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
    entries: Mutex<HashMap<String, (User, Instant)>>,
}

impl TokenCache {
    /// The user of a token hash validated less than [`TOKEN_CACHE_TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<User> {
        let entries = self.entries.lock().ok()?;
        let (user, at) = entries.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| user.clone())
    }

    /// Remembers a valid token.
    pub fn put(&self, hash: String, user: User) {
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

    fn user() -> User {
        User {
            id: uuid::Uuid::now_v7(),
            phone_number: "+1234567890".into(),
            display_name: None,
            created_at: String::new(),
        }
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
