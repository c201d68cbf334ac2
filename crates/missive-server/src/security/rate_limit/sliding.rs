//! Limits of small counts over long windows, kept exactly: register/login
//! requests per client address (`AUTH_RATE_LIMIT` per minute), phone-number
//! lookups per user and per address (`LOOKUP_RATE_LIMIT`), and, per phone
//! number whatever the address, login codes issued (3 per 10 minutes, 10
//! per day) and wrong guesses (10 per hour; a new code does not reset them).
//!
//! A token bucket would be too lenient here (GCRA lets a burst *and* the
//! refill through in one window: 3 per minute became 6 in the first
//! minute), so each key keeps a sliding log of its recent events: an event
//! is let through only while every window holds fewer than its maximum. At
//! most N events fall in any window of its length, on one node or many.
//!
//! A guess is charged *before* the code is checked (a reservation), so that
//! concurrent guesses cannot all slip past a nearly spent budget, and it is
//! refunded when the code was right; an issued code is refunded when its
//! delivery failed.
//!
//! With Redis, the log is a sorted set per number, checked and appended in
//! one script, so the limits hold across nodes exactly. The node's own log is
//! kept as well: when Redis fails (1 s timeout), the node's log still applies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::security::clock::{Clock, SystemClock};

/// A limit: at most `max` events in any `length` of time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The window's length.
    pub length: Duration,
    /// Events allowed in it.
    pub max: u32,
}

/// Login codes issued per number: 3 per 10 minutes and 10 per day.
pub const CODE_WINDOWS: [Window; 2] = [
    Window {
        length: Duration::from_secs(10 * 60),
        max: 3,
    },
    Window {
        length: Duration::from_secs(24 * 60 * 60),
        max: 10,
    },
];

/// Wrong login codes per number: 10 per hour, across codes.
pub const GUESS_WINDOWS: [Window; 1] = [Window {
    length: Duration::from_secs(60 * 60),
    max: 10,
}];

/// A client address's share of the lookups: several users may sit behind
/// one address (a NAT), so it gets this many times a user's.
pub const LOOKUPS_PER_ADDRESS: u32 = 4;
/// Keys (numbers, addresses, users) tracked per log on one node at most. Past it, expired entries
/// are dropped; if it is still full, new numbers are not tracked by this
/// node (with a warning) rather than growing without bound — the per-code
/// attempt limit and the per-address limits still apply to them.
const MAX_NUMBERS: usize = 200_000;
/// Longest wait for Redis.
const TIMEOUT: Duration = Duration::from_secs(1);
/// At most one warning per this long about Redis failures.
const LOG_EVERY_MS: i64 = 10_000;

/// Sliding-window check and append over a sorted set (scores: milliseconds).
/// KEYS[1] the set; ARGV[1] now (ms), ARGV[2] the new member, ARGV[3] the
/// longest window (ms), then pairs of window length (ms) and maximum.
/// Returns 0 when the event was appended, else the milliseconds until it
/// would be allowed.
const SLIDING: &str = r"
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - keep)
local wait = 0
for i = 4, #ARGV, 2 do
  local len = tonumber(ARGV[i])
  local max = tonumber(ARGV[i + 1])
  local from = '(' .. (now - len)
  local n = redis.call('ZCOUNT', KEYS[1], from, '+inf')
  if n >= max then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', n - max, 1)
    local w = tonumber(oldest[2]) + len - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], keep)
return 0
";

/// Which log an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Login codes issued, per phone number.
    Codes,
    /// Login guesses, per phone number (refunded when right).
    Guesses,
    /// Register/login requests, per client address.
    Requests,
    /// Phone-number lookups, per user.
    Lookups,
    /// Phone-number lookups, per client address.
    AddressLookups,
}

impl Log {
    const ALL: [Log; 5] = [
        Log::Codes,
        Log::Guesses,
        Log::Requests,
        Log::Lookups,
        Log::AddressLookups,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name in Redis keys and logs (the login logs keep their older keys).
    fn name(self) -> &'static str {
        match self {
            Log::Codes => "login:codes",
            Log::Guesses => "login:guesses",
            Log::Requests => "auth",
            Log::Lookups => "lookups:user",
            Log::AddressLookups => "lookups:address",
        }
    }
}

/// The windows of every log: `[Log::index]` → its windows (empty: off).
#[derive(Debug, Clone, Default)]
pub struct Windows([Vec<Window>; 5]);

impl Windows {
    /// The login logs (codes and guesses per number) and `auth_per_minute`
    /// requests per address, all off when it is 0; `lookups_per_minute`
    /// lookups per user and [`LOOKUPS_PER_ADDRESS`] times that per
    /// address, off when 0.
    pub fn new(auth_per_minute: u32, lookups_per_minute: u32) -> Self {
        let minute = |max: u32| Window {
            length: Duration::from_secs(60),
            max,
        };
        let mut windows = Windows::default();
        if auth_per_minute > 0 {
            windows.0[Log::Codes.index()] = CODE_WINDOWS.to_vec();
            windows.0[Log::Guesses.index()] = GUESS_WINDOWS.to_vec();
            windows.0[Log::Requests.index()] = vec![minute(auth_per_minute)];
        }
        if lookups_per_minute > 0 {
            windows.0[Log::Lookups.index()] = vec![minute(lookups_per_minute)];
            windows.0[Log::AddressLookups.index()] = vec![minute(
                lookups_per_minute.saturating_mul(LOOKUPS_PER_ADDRESS),
            )];
        }
        windows
    }

    fn of(&self, log: Log) -> &[Window] {
        &self.0[log.index()]
    }

    /// The longest window of `log`: what its log must remember.
    fn keep_ms(&self, log: Log) -> i64 {
        self.of(log)
            .iter()
            .map(|w| millis(w.length))
            .max()
            .unwrap_or(0)
    }
}

/// An event let through, which can be refunded.
#[derive(Debug)]
pub struct Ticket {
    log: Log,
    key: String,
    id: Uuid,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether one more event fits `windows` given the `times` already logged
/// (oldest first); `Err(wait)` otherwise.
fn fits(times: &[(i64, Uuid)], windows: &[Window], now: i64) -> Result<(), Duration> {
    let mut wait = 0i64;
    for window in windows {
        let length = millis(window.length);
        let inside: Vec<i64> = times
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t > now - length)
            .collect();
        let max = window.max as usize;
        if inside.len() >= max {
            // The event that must leave the window before one more fits.
            let leaving = inside[inside.len() - max];
            wait = wait.max(leaving + length - now);
        }
    }
    if wait > 0 {
        Err(Duration::from_millis(wait as u64))
    } else {
        Ok(())
    }
}

/// One node's logs: per log, key → its recent events.
#[derive(Default)]
struct LocalLogs([HashMap<String, Vec<(i64, Uuid)>>; 5]);

impl LocalLogs {
    fn of(&mut self, log: Log) -> &mut HashMap<String, Vec<(i64, Uuid)>> {
        &mut self.0[log.index()]
    }

    /// Drops events older than `keep` ms, and emptied keys.
    fn prune(&mut self, log: Log, keep: i64, now: i64) {
        self.of(log).retain(|_, times| {
            times.retain(|(t, _)| *t > now - keep);
            !times.is_empty()
        });
    }

    /// Appends an event when it fits `windows`; `Ok(false)` when the key
    /// could not be tracked (the log is full).
    fn try_add(
        &mut self,
        log: Log,
        windows: &Windows,
        key: &str,
        id: Uuid,
        now: i64,
    ) -> Result<bool, Duration> {
        let keep = windows.keep_ms(log);
        if !self.of(log).contains_key(key) && self.of(log).len() >= MAX_NUMBERS {
            self.prune(log, keep, now);
            if self.of(log).len() >= MAX_NUMBERS {
                return Ok(false);
            }
        }
        let times = self.of(log).entry(key.to_owned()).or_default();
        times.retain(|(t, _)| *t > now - keep);
        fits(times, windows.of(log), now)?;
        times.push((now, id));
        Ok(true)
    }

    fn remove(&mut self, log: Log, key: &str, id: Uuid) {
        if let Some(times) = self.of(log).get_mut(key) {
            times.retain(|(_, i)| *i != id);
        }
    }
}

/// The same logs in Redis, shared by every node.
struct RedisLogs {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisLogs {
    fn key(&self, log: Log, key: &str) -> String {
        format!("{}:rl:{}:{key}", self.prefix, log.name())
    }

    /// `Ok(Ok(()))` appended, `Ok(Err(wait))` refused, `Err` Redis failed.
    async fn try_add(
        &self,
        log: Log,
        windows: &Windows,
        key: &str,
        id: Uuid,
        now: i64,
    ) -> Result<Result<(), Duration>, String> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SLIDING)
            .arg(1)
            .arg(self.key(log, key))
            .arg(now)
            .arg(id.to_string())
            .arg(windows.keep_ms(log));
        for window in windows.of(log) {
            cmd.arg(millis(window.length)).arg(window.max);
        }
        let mut conn = self.conn.clone();
        let wait = tokio::time::timeout(TIMEOUT, cmd.query_async::<i64>(&mut conn))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(if wait > 0 {
            Err(Duration::from_millis(wait as u64))
        } else {
            Ok(())
        })
    }

    async fn remove(&self, log: Log, key: &str, id: Uuid) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.key(log, key)).arg(id.to_string());
        let removed = cmd.query_async::<i64>(&mut conn);
        tokio::time::timeout(TIMEOUT, removed)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The sliding-log limits of a node (and, with Redis, of the cluster).
pub struct SlidingLimits {
    windows: Windows,
    local: Mutex<LocalLogs>,
    redis: Option<RedisLogs>,
    clock: Arc<dyn Clock>,
    last_warning: AtomicI64,
}

impl SlidingLimits {
    /// Node-local limits with `windows`, on the system clock.
    pub fn new(windows: Windows) -> Self {
        SlidingLimits {
            windows,
            local: Mutex::default(),
            redis: None,
            clock: Arc::new(SystemClock),
            last_warning: AtomicI64::new(i64::MIN),
        }
    }

    /// Reads time from `clock` (tests move it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also keeps the logs in Redis through `conn`, keys under `prefix`.
    pub fn with_redis(mut self, conn: ConnectionManager, prefix: &str) -> Self {
        self.redis = Some(RedisLogs {
            conn,
            prefix: prefix.to_owned(),
        });
        self
    }

    /// Whether any log is on (Redis is then worth connecting).
    pub fn any(&self) -> bool {
        Log::ALL.iter().any(|log| !self.windows.of(*log).is_empty())
    }

    /// Charges one event of `log` to `key`; `Err(wait)` when a window is
    /// full. `Ok(None)` when the log is off.
    pub async fn charge(&self, log: Log, key: &str) -> Result<Option<Ticket>, Duration> {
        if self.windows.of(log).is_empty() {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let id = Uuid::now_v7();
        let mut in_redis = false;
        if let Some(redis) = &self.redis {
            match redis.try_add(log, &self.windows, key, id, now).await {
                Ok(Ok(())) => in_redis = true,
                Ok(Err(wait)) => return Err(wait),
                Err(e) => self.warn(&e, now),
            }
        }
        let local = self
            .local
            .lock()
            .map_err(|_| Duration::from_secs(1))?
            .try_add(log, &self.windows, key, id, now);
        match local {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                log = log.name(),
                "rate limits: too many keys tracked on this node; one is not tracked"
            ),
            Err(wait) => {
                // This node remembers events that Redis missed while it was
                // down: refused here, so take the Redis entry back.
                if in_redis && let Some(redis) = &self.redis {
                    let _ = redis.remove(log, key, id).await;
                }
                return Err(wait);
            }
        }
        Ok(Some(Ticket {
            log,
            key: key.to_owned(),
            id,
        }))
    }

    /// Takes a charged event back (a right guess, an undelivered code).
    pub async fn refund(&self, ticket: Ticket) {
        if let Ok(mut local) = self.local.lock() {
            local.remove(ticket.log, &ticket.key, ticket.id);
        }
        if let Some(redis) = &self.redis
            && let Err(e) = redis.remove(ticket.log, &ticket.key, ticket.id).await
        {
            self.warn(&e, self.clock.now_ms());
        }
    }

    /// Drops what no window needs any more (call periodically).
    pub fn shrink(&self) {
        let now = self.clock.now_ms();
        if let Ok(mut local) = self.local.lock() {
            for log in Log::ALL {
                local.prune(log, self.windows.keep_ms(log), now);
            }
        }
    }

    fn warn(&self, error: &str, now: i64) {
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY_MS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %error,
                "rate limits: Redis failed; only this node's counts apply meanwhile"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::clock::ManualClock;

    fn manual() -> (SlidingLimits, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let limits = SlidingLimits::new(Windows::new(3, 30)).with_clock(clock.clone());
        (limits, clock)
    }

    #[tokio::test]
    async fn three_codes_per_ten_minutes_and_ten_per_day() {
        let (limits, clock) = manual();
        let mut issued = 0;
        // Over a day, one request a minute: the short window lets 3 through
        // every 10 minutes until the day's 10 are used.
        for _ in 0..(24 * 60) {
            if limits.charge(Log::Codes, "+15550000001").await.is_ok() {
                issued += 1;
            }
            clock.advance(Duration::from_secs(60));
        }
        assert_eq!(issued, 10);

        let (limits, clock) = manual();
        for _ in 0..3 {
            assert!(limits.charge(Log::Codes, "+15550000001").await.is_ok());
        }
        let wait = limits
            .charge(Log::Codes, "+15550000001")
            .await
            .expect_err("a fourth code within ten minutes");
        assert_eq!(wait, Duration::from_secs(600));
        assert!(
            limits.charge(Log::Codes, "+15550000002").await.is_ok(),
            "other numbers are not affected"
        );
        clock.advance(Duration::from_secs(600));
        assert!(limits.charge(Log::Codes, "+15550000001").await.is_ok());
    }

    #[tokio::test]
    async fn refunded_guesses_do_not_count() {
        let (limits, clock) = manual();
        for _ in 0..20 {
            let ticket = limits
                .charge(Log::Guesses, "+15550000001")
                .await
                .expect("right guesses are refunded")
                .expect("on");
            limits.refund(ticket).await;
        }
        for _ in 0..10 {
            assert!(limits.charge(Log::Guesses, "+15550000001").await.is_ok());
        }
        assert!(limits.charge(Log::Guesses, "+15550000001").await.is_err());
        clock.advance(Duration::from_secs(3600));
        assert!(limits.charge(Log::Guesses, "+15550000001").await.is_ok());
        limits.shrink();
    }

    #[tokio::test]
    async fn at_most_n_requests_in_any_minute_whatever_their_pace() {
        // A burst, then one a second: a bucket let 2N - 1 through in the
        // first minute; the log lets N through in every 60 s window.
        let (limits, clock) = manual();
        let mut allowed = Vec::new();
        for second in 0..180u64 {
            let burst = if second == 0 { 20 } else { 1 };
            for _ in 0..burst {
                if limits.charge(Log::Requests, "10.0.0.1").await.is_ok() {
                    allowed.push(second);
                }
            }
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(allowed, vec![0, 0, 0, 60, 61, 62, 120, 121, 122]);
        assert!(limits.charge(Log::Requests, "10.0.0.2").await.is_ok());
    }

    #[tokio::test]
    async fn a_log_without_windows_is_off() {
        let limits = SlidingLimits::new(Windows::new(0, 0));
        assert!(!limits.any());
        for _ in 0..100 {
            assert!(matches!(
                limits.charge(Log::Requests, "10.0.0.1").await,
                Ok(None)
            ));
        }
    }
}
