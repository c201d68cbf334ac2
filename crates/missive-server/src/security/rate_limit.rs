//! Rate limits: sends per user (HTTP and WebSocket together; governor's
//! GCRA, bursts of 10×), and, as exact sliding logs (see [`sliding`]):
//! register/login requests per client address (per /64 for IPv6 clients,
//! which usually hold a whole /64), phone-number lookups per user and per
//! address, and login limits per phone number, whatever the address.
//!
//! With Redis ([`RateLimits::with_cluster`]) they are counted cluster-wide
//! (see [`cluster`] and [`sliding`]), so N nodes do not multiply them.

mod cluster;
pub mod sliding;

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use self::sliding::{Log, SlidingLimits, Ticket, Windows};
use crate::security::clock::Clock;

/// The key of a client address for the per-address limits: an IPv6 address
/// is cut to its /64 (one subscriber gets a whole /64 and could otherwise
/// rotate through it); an IPv4-mapped IPv6 address is its IPv4 address.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The server's limiters; a disabled one (limit 0) lets everything through.
pub struct RateLimits {
    send: Option<DefaultKeyedRateLimiter<Uuid>>,
    clock: DefaultClock,
    /// The send budget counted across nodes, when Redis is configured.
    cluster: Option<cluster::ClusterLimits>,
    /// Per-address requests, lookups and per-number login limits.
    sliding: SlidingLimits,
    send_per_second: u32,
}

impl RateLimits {
    /// `send_per_second` per user with bursts of 10×; `auth_per_minute` per
    /// address (and the per-number login limits, off with it);
    /// `lookups_per_minute` per user ([`sliding::LOOKUPS_PER_ADDRESS`]× per address).
    pub fn new(send_per_second: u32, auth_per_minute: u32, lookups_per_minute: u32) -> Self {
        let send = NonZeroU32::new(send_per_second).map(|rate| {
            let burst = NonZeroU32::new(rate.get().saturating_mul(10)).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        RateLimits {
            send,
            clock: DefaultClock::default(),
            cluster: None,
            sliding: SlidingLimits::new(Windows::new(auth_per_minute, lookups_per_minute)),
            send_per_second,
        }
    }

    /// Reads the time of the sliding windows from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.sliding = self.sliding.with_clock(clock);
        self
    }

    /// Also counts every request in Redis at `url` (keys under `prefix`), so
    /// that the budgets hold across nodes. Fails only on a malformed URL.
    pub fn with_cluster(mut self, url: &str, prefix: &str) -> anyhow::Result<Self> {
        if self.sliding.any() {
            let conn = cluster::connect(url)?;
            self.sliding = self.sliding.with_redis(conn, prefix);
        }
        if let Some(rate) = NonZeroU32::new(self.send_per_second) {
            let send = cluster::Budget {
                interval: Duration::from_secs(1) / rate.get(),
                burst: rate.get().saturating_mul(10),
            };
            self.cluster = Some(cluster::ClusterLimits::start(url, prefix, send)?);
        }
        Ok(self)
    }

    /// Counts a send of `user`; `Err(wait)` when over the limit.
    pub fn check_send(&self, user: Uuid) -> Result<(), Duration> {
        let Some(limiter) = &self.send else {
            return Ok(());
        };
        if let Some(wait) = self.cluster.as_ref().and_then(|c| c.blocked(&user)) {
            return Err(wait);
        }
        limiter
            .check_key(&user)
            .map_err(|n| n.wait_time_from(self.clock.now()))?;
        if let Some(cluster) = &self.cluster {
            cluster.record(user);
        }
        Ok(())
    }

    /// Counts a register/login request from `address`; `Err(wait)` when it
    /// had `AUTH_RATE_LIMIT` in the last minute.
    pub async fn check_auth(&self, address: IpAddr) -> Result<(), Duration> {
        let key = address_key(address).to_string();
        self.sliding.charge(Log::Requests, &key).await.map(drop)
    }

    /// Counts a phone-number lookup of `user` from `address`; `Err(wait)`
    /// when the user had `LOOKUP_RATE_LIMIT` in the last minute, or the
    /// address [`sliding::LOOKUPS_PER_ADDRESS`] times that.
    pub async fn check_lookup(&self, user: Uuid, address: IpAddr) -> Result<(), Duration> {
        let ticket = self.sliding.charge(Log::Lookups, &user.to_string()).await?;
        let Some(ticket) = ticket else {
            return Ok(());
        };
        let address = address_key(address).to_string();
        if let Err(wait) = self.sliding.charge(Log::AddressLookups, &address).await {
            self.sliding.refund(ticket).await;
            return Err(wait);
        }
        Ok(())
    }

    /// Counts a login code about to be issued to `phone`; `Err(wait)` when
    /// the number had 3 in the last 10 minutes or 10 in the last day.
    /// Refund the ticket if the code was not delivered.
    pub async fn charge_code(&self, phone: &str) -> Result<Option<Ticket>, Duration> {
        self.sliding.charge(Log::Codes, phone).await
    }

    /// Counts a guess at `phone`'s login code before it is checked;
    /// `Err(wait)` when the number had 10 wrong guesses in the last hour.
    /// Refund the ticket when the guess was right.
    pub async fn charge_guess(&self, phone: &str) -> Result<Option<Ticket>, Duration> {
        self.sliding.charge(Log::Guesses, phone).await
    }

    /// Takes back what [`Self::charge_code`] or [`Self::charge_guess`] counted.
    pub async fn refund(&self, ticket: Option<Ticket>) {
        if let Some(ticket) = ticket {
            self.sliding.refund(ticket).await;
        }
    }

    /// Drops the state of keys that are back to a full bucket or an empty
    /// log (call periodically).
    pub fn shrink(&self) {
        self.sliding.shrink();
        if let Some(l) = &self.send {
            l.retain_recent();
        }
        if let Some(c) = &self.cluster {
            c.shrink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_allow_a_burst_of_ten_times_the_rate_then_refuse() {
        let limits = RateLimits::new(2, 0, 0);
        let user = Uuid::now_v7();
        for _ in 0..20 {
            assert!(limits.check_send(user).is_ok());
        }
        let wait = limits.check_send(user).expect_err("over the limit");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(
            limits.check_send(Uuid::now_v7()).is_ok(),
            "other users are not affected"
        );
    }

    #[tokio::test]
    async fn zero_disables_a_limit() {
        let limits = RateLimits::new(0, 0, 0);
        let address: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..10_000 {
            assert!(limits.check_send(Uuid::nil()).is_ok());
            assert!(limits.check_auth(address).await.is_ok());
            assert!(limits.check_lookup(Uuid::nil(), address).await.is_ok());
        }
    }

    #[tokio::test]
    async fn auth_requests_are_limited_per_address() {
        let limits = RateLimits::new(0, 3, 0);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limits.check_auth(a).await.is_ok());
        }
        let wait = limits.check_auth(a).await.expect_err("a fourth");
        assert!(wait > Duration::from_secs(59), "{wait:?}");
        assert!(limits.check_auth(b).await.is_ok());
    }

    #[tokio::test]
    async fn lookups_are_limited_per_user_and_more_loosely_per_address() {
        let limits = RateLimits::new(0, 0, 2);
        let nat: IpAddr = "10.0.0.1".parse().expect("ip");
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(limits.check_lookup(one, nat).await.is_ok());
        assert!(limits.check_lookup(one, nat).await.is_ok());
        assert!(limits.check_lookup(one, nat).await.is_err(), "the user's 2");
        // Users behind one address share its 4 × 2.
        let mut others = 0;
        for user in std::iter::repeat_with(Uuid::now_v7).take(10) {
            if limits.check_lookup(user, nat).await.is_ok() {
                others += 1;
            }
        }
        assert_eq!(others, 6, "the address's 8, two of them used");
        let elsewhere: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(limits.check_lookup(two, elsewhere).await.is_ok());
    }

    #[tokio::test]
    async fn ipv6_clients_are_limited_per_64() {
        let limits = RateLimits::new(0, 2, 0);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limits.check_auth(one).await.is_ok());
        assert!(limits.check_auth(same_64).await.is_ok());
        assert!(
            limits.check_auth(one).await.is_err(),
            "the /64 shares one budget"
        );
        assert!(limits.check_auth(same_64).await.is_err());
        assert!(limits.check_auth(other_64).await.is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[tokio::test]
    async fn per_number_login_limits_are_off_with_the_auth_limit() {
        let limits = RateLimits::new(0, 0, 0);
        for _ in 0..50 {
            assert!(limits.charge_code("+15550000001").await.is_ok());
            assert!(limits.charge_guess("+15550000001").await.is_ok());
        }
        let limits = RateLimits::new(0, 1000, 0);
        for _ in 0..3 {
            assert!(limits.charge_code("+15550000001").await.is_ok());
        }
        assert!(limits.charge_code("+15550000001").await.is_err());
    }
}
