//! Rate limits (governor's GCRA): sends per user (HTTP and WebSocket
//! together) and register/login requests per client address (per /64 for
//! IPv6 clients, which usually hold a whole /64); plus login limits per
//! phone number, whatever the address (see [`login`]).
//!
//! With Redis ([`RateLimits::with_cluster`]) the budgets are also counted
//! cluster-wide (see [`cluster`]), so N nodes do not multiply them.

mod cluster;
pub mod login;

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use self::login::{Log, LoginLimits, Ticket};
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
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// The same budgets counted across nodes, when Redis is configured.
    cluster: Option<cluster::ClusterLimits>,
    /// Per-number login limits; on whenever the per-address auth limit is.
    login: Option<LoginLimits>,
    send_per_second: u32,
    auth_per_minute: u32,
}

impl RateLimits {
    /// `send_per_second` per user with bursts of 10×; `auth_per_minute` per address.
    pub fn new(send_per_second: u32, auth_per_minute: u32) -> Self {
        let send = NonZeroU32::new(send_per_second).map(|rate| {
            let burst = NonZeroU32::new(rate.get().saturating_mul(10)).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let auth = NonZeroU32::new(auth_per_minute)
            .map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate)));
        RateLimits {
            send,
            auth,
            clock: DefaultClock::default(),
            cluster: None,
            login: (auth_per_minute > 0).then(LoginLimits::new),
            send_per_second,
            auth_per_minute,
        }
    }

    /// Reads the time of the per-number login windows from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.login = self.login.map(|l| l.with_clock(clock));
        self
    }

    /// Also counts every request in Redis at `url` (keys under `prefix`), so
    /// that the budgets hold across nodes. Fails only on a malformed URL.
    pub fn with_cluster(mut self, url: &str, prefix: &str) -> anyhow::Result<Self> {
        if let Some(login) = self.login.take() {
            let conn = cluster::connect(url)?;
            self.login = Some(login.with_redis(conn, prefix));
        }
        let send = NonZeroU32::new(self.send_per_second).map(|rate| cluster::Budget {
            interval: Duration::from_secs(1) / rate.get(),
            burst: rate.get().saturating_mul(10),
        });
        let auth = NonZeroU32::new(self.auth_per_minute).map(|rate| cluster::Budget {
            interval: Duration::from_secs(60) / rate.get(),
            burst: rate.get(),
        });
        if send.is_some() || auth.is_some() {
            self.cluster = Some(cluster::ClusterLimits::start(url, prefix, send, auth)?);
        }
        Ok(self)
    }

    /// Counts a send of `user`; `Err(wait)` when over the limit.
    pub fn check_send(&self, user: Uuid) -> Result<(), Duration> {
        let Some(limiter) = &self.send else {
            return Ok(());
        };
        let key = cluster::Key::Send(user);
        if let Some(wait) = self.cluster.as_ref().and_then(|c| c.blocked(&key)) {
            return Err(wait);
        }
        limiter
            .check_key(&user)
            .map_err(|n| n.wait_time_from(self.clock.now()))?;
        if let Some(cluster) = &self.cluster {
            cluster.record(key);
        }
        Ok(())
    }

    /// Counts a register/login request from `address`; `Err(wait)` when over the limit.
    pub fn check_auth(&self, address: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.auth else {
            return Ok(());
        };
        let address = address_key(address);
        let key = cluster::Key::Auth(address);
        if let Some(wait) = self.cluster.as_ref().and_then(|c| c.blocked(&key)) {
            return Err(wait);
        }
        limiter
            .check_key(&address)
            .map_err(|n| n.wait_time_from(self.clock.now()))?;
        if let Some(cluster) = &self.cluster {
            cluster.record(key);
        }
        Ok(())
    }

    /// Counts a login code about to be issued to `phone`; `Err(wait)` when
    /// the number had 3 in the last 10 minutes or 10 in the last day.
    /// Refund the ticket if the code was not delivered.
    pub async fn charge_code(&self, phone: &str) -> Result<Option<Ticket>, Duration> {
        match &self.login {
            Some(login) => login.charge(Log::Codes, phone).await.map(Some),
            None => Ok(None),
        }
    }

    /// Counts a guess at `phone`'s login code before it is checked;
    /// `Err(wait)` when the number had 10 wrong guesses in the last hour.
    /// Refund the ticket when the guess was right.
    pub async fn charge_guess(&self, phone: &str) -> Result<Option<Ticket>, Duration> {
        match &self.login {
            Some(login) => login.charge(Log::Guesses, phone).await.map(Some),
            None => Ok(None),
        }
    }

    /// Takes back what [`Self::charge_code`] or [`Self::charge_guess`] counted.
    pub async fn refund(&self, ticket: Option<Ticket>) {
        if let (Some(login), Some(ticket)) = (&self.login, ticket) {
            login.refund(ticket).await;
        }
    }

    /// Drops the state of keys that are back to a full bucket (call periodically).
    pub fn shrink(&self) {
        if let Some(l) = &self.login {
            l.shrink();
        }
        if let Some(l) = &self.send {
            l.retain_recent();
        }
        if let Some(l) = &self.auth {
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
        let limits = RateLimits::new(2, 0);
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

    #[test]
    fn zero_disables_a_limit() {
        let limits = RateLimits::new(0, 0);
        let address: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..10_000 {
            assert!(limits.check_send(Uuid::nil()).is_ok());
            assert!(limits.check_auth(address).is_ok());
        }
    }

    #[test]
    fn auth_requests_are_limited_per_address() {
        let limits = RateLimits::new(0, 3);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limits.check_auth(a).is_ok());
        }
        assert!(limits.check_auth(a).is_err());
        assert!(limits.check_auth(b).is_ok());
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let limits = RateLimits::new(0, 2);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limits.check_auth(one).is_ok());
        assert!(limits.check_auth(same_64).is_ok());
        assert!(limits.check_auth(one).is_err(), "the /64 shares one budget");
        assert!(limits.check_auth(same_64).is_err());
        assert!(limits.check_auth(other_64).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[tokio::test]
    async fn per_number_login_limits_are_off_with_the_auth_limit() {
        let limits = RateLimits::new(0, 0);
        for _ in 0..50 {
            assert!(limits.charge_code("+15550000001").await.is_ok());
            assert!(limits.charge_guess("+15550000001").await.is_ok());
        }
        let limits = RateLimits::new(0, 1000);
        for _ in 0..3 {
            assert!(limits.charge_code("+15550000001").await.is_ok());
        }
        assert!(limits.charge_code("+15550000001").await.is_err());
    }
}
