//! Rate limits (governor's GCRA): sends per user (HTTP and WebSocket
//! together) and register/login requests per client address.
//!
//! With Redis ([`RateLimits::with_cluster`]) the budgets are also counted
//! cluster-wide (see [`cluster`]), so N nodes do not multiply them.

mod cluster;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

/// The server's limiters; a disabled one (limit 0) lets everything through.
pub struct RateLimits {
    send: Option<DefaultKeyedRateLimiter<Uuid>>,
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// The same budgets counted across nodes, when Redis is configured.
    cluster: Option<cluster::ClusterLimits>,
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
            send_per_second,
            auth_per_minute,
        }
    }

    /// Also counts every request in Redis at `url` (keys under `prefix`), so
    /// that the budgets hold across nodes. Fails only on a malformed URL.
    pub fn with_cluster(mut self, url: &str, prefix: &str) -> anyhow::Result<Self> {
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

    /// Drops the state of keys that are back to a full bucket (call periodically).
    pub fn shrink(&self) {
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
}
