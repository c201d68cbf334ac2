//! Bearer tokens: 256 random bits, stored only as a SHA-256 hash, and a
//! short-lived cache of hash → session.
//!
//! **Revocation is immediate on every node.** A cached entry is trusted for
//! [`TOKEN_CACHE_TTL`], counted from the moment the store read behind it
//! *began*. So every entry of another node that still shows a revoked
//! token as valid is gone [`TOKEN_CACHE_TTL`] after the revocation's commit;
//! in a cluster the revoking node waits that long before it answers (see
//! `Service::revoked`), so no node accepts the token after the `204`. The
//! revocation event on the bus makes the other nodes forget it (and close
//! its sockets) sooner; an open WebSocket re-checks its token through this
//! cache before it acts or delivers once its last check is older than
//! [`TOKEN_CACHE_TTL`] (see [`TokenWatch`]), so even a lost event cannot
//! keep a revoked token's socket working. The cost per request is nothing
//! beyond the cache lookup; a logout or session revoke on a cluster takes
//! [`TOKEN_CACHE_TTL`] longer.
//!
//! Tokens expire after `TOKEN_TTL` without use (sliding). A use is written
//! to the store at most once per [`touch_granularity`] per token, so the
//! hot path reads but does not write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::TokenSession;

/// How long a cached lookup is trusted, from the start of the store read
/// behind it; a revoking node of a cluster waits this long before answering.
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

/// A token's session as a store read found it, and when that read began
/// (what the entry's trust is counted from).
#[derive(Clone)]
pub struct Checked {
    /// The session.
    pub session: TokenSession,
    /// When the store read that found it began.
    pub read_at: Instant,
}

impl Checked {
    /// Until when this lookup may be trusted.
    pub fn trusted_until(&self) -> Instant {
        self.read_at + TOKEN_CACHE_TTL
    }
}

/// Recently validated tokens, and recently revoked ones.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// What the cache knows of a token.
enum Entry {
    /// Found valid.
    Valid(Checked),
    /// Revoked on this node at that moment: a store read that began before
    /// it (and may have seen the token still valid) is not cached.
    Revoked(Instant),
}

impl Entry {
    /// When this entry stops mattering.
    fn fresh(&self) -> bool {
        match self {
            Entry::Valid(c) => c.read_at.elapsed() < TOKEN_CACHE_TTL,
            Entry::Revoked(at) => at.elapsed() < TOKEN_CACHE_TTL,
        }
    }
}

impl TokenCache {
    /// The session of a token hash read from the store less than
    /// [`TOKEN_CACHE_TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<Checked> {
        let entries = self.entries.lock().ok()?;
        match entries.get(hash)? {
            Entry::Valid(c) if c.read_at.elapsed() < TOKEN_CACHE_TTL => Some(c.clone()),
            _ => None,
        }
    }

    /// Notes that a use at `at` is being recorded, so that the other
    /// requests served from this entry do not record it again.
    pub fn used(&self, hash: &str, at: i64) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(Entry::Valid(checked)) = entries.get_mut(hash)
        {
            checked.session.last_used_at = checked.session.last_used_at.max(at);
        }
    }

    /// Remembers a valid token, found by a store read that began at
    /// `read_at`; `None` when this node revoked it after that read began
    /// (the read may predate the revocation: the token is not valid).
    pub fn put(&self, hash: String, session: TokenSession, read_at: Instant) -> Option<Checked> {
        let checked = Checked { session, read_at };
        let Ok(mut entries) = self.entries.lock() else {
            return Some(checked);
        };
        if let Some(Entry::Revoked(at)) = entries.get(&hash)
            && read_at <= *at
        {
            return None;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.fresh());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, Entry::Valid(checked.clone()));
        Some(checked)
    }

    /// Forgets a token that was revoked (or has expired): no read that
    /// began before now is cached for it any more.
    pub fn remove(&self, hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(hash.to_owned(), Entry::Revoked(Instant::now()));
        }
    }
}

/// The token an open connection was opened with, and until when its last
/// check may be trusted. The connection's reader and writer ask
/// [`TokenWatch::trusted`] before acting on a client frame or delivering an
/// event; past that moment they re-check the token (through the cache) and
/// close the connection if it was revoked or has expired.
pub struct TokenWatch {
    /// The token's hash.
    pub hash: String,
    /// [`monotonic_ms`] until which the last check is trusted.
    trusted_until: AtomicU64,
    /// Set once a check found the token revoked or expired.
    revoked: AtomicBool,
}

impl TokenWatch {
    /// A watch over the token with `hash`, checked as `checked` says.
    pub fn new(hash: String, checked: &Checked) -> Arc<Self> {
        Arc::new(TokenWatch {
            hash,
            trusted_until: AtomicU64::new(monotonic_ms(checked.trusted_until())),
            revoked: AtomicBool::new(false),
        })
    }

    /// Whether the last check is still trusted now (no check needed).
    pub fn trusted(&self) -> bool {
        !self.revoked.load(Ordering::Relaxed)
            && monotonic_ms(Instant::now()) < self.trusted_until.load(Ordering::Relaxed)
    }

    /// Records a new check: `Some` (valid, trusted until then) or `None`
    /// (revoked or expired: the watch stays revoked).
    pub fn checked(&self, check: Option<&Checked>) {
        match check {
            Some(c) => self
                .trusted_until
                .fetch_max(monotonic_ms(c.trusted_until()), Ordering::Relaxed),
            None => {
                self.revoked.store(true, Ordering::Relaxed);
                0
            }
        };
    }

    /// Whether a check found the token revoked or expired.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// `at` as milliseconds since the first call (a monotonic clock an atomic can hold).
fn monotonic_ms(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(|| Instant::now() - Duration::from_secs(1));
    u64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
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
        cache.put("h".into(), user(), Instant::now());
        cache.used("h", 5_000);
        assert_eq!(cache.get("h").expect("cached").session.last_used_at, 5_000);
        cache.used("h", 4_000);
        assert_eq!(cache.get("h").expect("cached").session.last_used_at, 5_000);
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
        cache.put("h".into(), user(), Instant::now());
        assert!(cache.get("h").is_some());
        cache.remove("h");
        assert!(cache.get("h").is_none());
        let before = Instant::now();
        cache.remove("h");
        assert!(
            cache.put("h".into(), user(), before).is_none(),
            "a read that began before the revocation is not cached"
        );
        assert!(cache.get("h").is_none());
        assert!(cache.put("h".into(), user(), Instant::now()).is_some());
        // Trust is counted from when the read began, not from when it was cached.
        cache.put("old".into(), user(), Instant::now() - TOKEN_CACHE_TTL);
        assert!(cache.get("old").is_none());
    }

    #[test]
    fn a_watch_trusts_a_check_for_the_cache_ttl_and_stays_revoked() {
        let fresh = Checked {
            session: user(),
            read_at: Instant::now(),
        };
        let watch = TokenWatch::new("h".into(), &fresh);
        assert!(watch.trusted());
        let stale = Checked {
            session: user(),
            read_at: Instant::now() - TOKEN_CACHE_TTL,
        };
        let old = TokenWatch::new("h".into(), &stale);
        assert!(!old.trusted(), "a check older than the TTL needs a new one");
        old.checked(Some(&fresh));
        assert!(old.trusted());
        old.checked(None);
        assert!(old.revoked());
        assert!(!old.trusted());
        old.checked(Some(&fresh));
        assert!(!old.trusted(), "a revoked watch never trusts again");
    }
}
