//! Who is calling: a bearer token, or a claimed identity believed according
//! to `AUTH_MODE`. Transport-neutral: HTTP builds a [`Caller`] from its
//! headers, the WebSocket upgrade from its query.
//!
//! | mode       | token    | claim / anonymous sandbox access       |
//! |------------|----------|----------------------------------------|
//! | `open`     | accepted | from anyone                            |
//! | `loopback` | accepted | from loopback peers to a trusted `Host` only, else 401 |
//! | `required` | required | never: 401 without a valid token       |
//!
//! A token always wins; a claim naming someone else than the token's user is a 403.
//! A token unused for longer than `TOKEN_TTL` has expired (401); each use
//! slides its expiry (recorded at most about once a minute, see
//! [`crate::security::tokens::touch_granularity`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use missive_protocol::User;

use super::{Error, ErrorCode, Service};
use crate::config::AuthMode;
use crate::domain::PhoneNumber;
use crate::metrics::RateLimitKind;
use crate::security::tokens::{Checked, hash_token, is_expired, touch_granularity, ttl_ms};
use crate::store::TokenSession;

/// Longest `User-Agent` kept with a session, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// A `User-Agent` header as stored with a session: invalid UTF-8 replaced,
/// control characters dropped, trimmed, at most [`MAX_USER_AGENT_CHARS`]
/// characters; `None` when nothing is left.
pub fn clean_user_agent(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    let cleaned = cleaned.trim_end().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// Whether a peer may use claimed identity (and anonymous sandbox access)
/// under `mode`. `trusted_host` says whether the request was addressed to a
/// loopback name or address, or to one of `ALLOWED_HOSTS`: under `loopback`
/// a claim needs both that and a loopback peer, so that a page of another
/// site whose name resolves to 127.0.0.1 (DNS rebinding) cannot make the
/// browser on this machine claim an identity. `open` believes anyone.
pub fn claims_allowed(mode: AuthMode, peer: Option<SocketAddr>, trusted_host: bool) -> bool {
    match mode {
        AuthMode::Open => true,
        AuthMode::Loopback => {
            trusted_host && peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
        }
        AuthMode::Required => false,
    }
}

/// What a request says about its caller, before anything is looked up.
#[derive(Debug, Clone)]
pub struct Caller {
    token: Option<String>,
    malformed_authorization: bool,
    peer: Option<SocketAddr>,
    user_agent: Option<String>,
    /// The request's `Host` is a loopback name or address, or in `ALLOWED_HOSTS`.
    trusted_host: bool,
}

/// A claimed identity: a phone number, or (on `/ws`) a user id or phone number.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    /// A phone number (`sender`, `phoneNumber`, `participant`).
    Phone(&'a str),
    /// A user id or a phone number (`userID` on `/ws`).
    IdOrPhone(&'a str),
}

impl Caller {
    /// A caller with a token or none, from `peer`, to an untrusted `Host`
    /// (see [`Caller::with_trusted_host`]).
    pub fn new(token: Option<String>, peer: Option<SocketAddr>) -> Self {
        Caller {
            token,
            malformed_authorization: false,
            peer,
            user_agent: None,
            trusted_host: false,
        }
    }

    /// A caller whose `Authorization` header is not `Bearer <token>` (a 401 when used).
    pub fn malformed(peer: Option<SocketAddr>) -> Self {
        Caller {
            token: None,
            malformed_authorization: true,
            peer,
            user_agent: None,
            trusted_host: false,
        }
    }

    /// The same caller, whose request named (`trusted`) or did not name a
    /// trusted `Host`: a loopback name or address, or one of `ALLOWED_HOSTS`.
    pub fn with_trusted_host(mut self, trusted: bool) -> Self {
        self.trusted_host = trusted;
        self
    }

    /// The same caller, with its `User-Agent` header (raw bytes; cleaned
    /// by [`clean_user_agent`]), kept with the tokens issued to it.
    pub fn with_user_agent(mut self, raw: Option<&[u8]>) -> Self {
        self.user_agent = raw.and_then(clean_user_agent);
        self
    }

    /// The caller's cleaned `User-Agent`, if it sent one.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Uses `token` (the WebSocket's `?token=`) when no Authorization header was sent.
    pub fn or_token(mut self, token: Option<String>) -> Self {
        if self.token.is_none() && !self.malformed_authorization {
            self.token = token.filter(|t| !t.is_empty());
        }
        self
    }

    /// The bearer token as sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The peer's IP address (for per-address rate limits).
    pub fn address(&self) -> IpAddr {
        self.peer
            .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip().to_canonical())
    }
}

fn claim_names(claim: Claim<'_>, user: &User) -> bool {
    match claim {
        Claim::Phone(raw) => raw.trim() == user.phone_number,
        Claim::IdOrPhone(raw) => {
            raw.trim() == user.phone_number || raw.trim() == user.id.to_string()
        }
    }
}

/// Puts the caller's user id on the current span (the transport's request
/// span), so that every log line of the request names the user.
fn record_user(user: &User) {
    tracing::Span::current().record("user", tracing::field::display(user.id));
}

/// A phone number, or `invalid_phone_number`.
pub fn parse_phone(raw: &str) -> Result<PhoneNumber, Error> {
    PhoneNumber::parse(raw).map_err(|e| Error::new(ErrorCode::InvalidPhoneNumber, e.to_string()))
}

impl Service {
    /// The user of the caller's bearer token, if one was sent; 401 if it is not valid.
    async fn token_user(&self, caller: &Caller) -> Result<Option<User>, Error> {
        Ok(self.token_session(caller).await?.map(|s| s.user))
    }

    /// The session of the caller's bearer token, if one was sent; 401 if it
    /// is unknown, revoked or expired. A use is recorded (in the background)
    /// when the stored last use is older than the touch granularity.
    pub(super) async fn token_session(
        &self,
        caller: &Caller,
    ) -> Result<Option<TokenSession>, Error> {
        if caller.malformed_authorization {
            return Err(Error::unauthorized(
                "the Authorization header must be 'Bearer <token>'",
            ));
        }
        let Some(token) = &caller.token else {
            return Ok(None);
        };
        let hash = hash_token(token);
        let Some(session) = self.lookup_token(&hash, false).await?.map(|c| c.session) else {
            return Err(Error::unauthorized(
                "the token is invalid, expired or revoked",
            ));
        };
        let now = self.clock.now_ms();
        if is_expired(session.last_used_at, now, self.token_ttl) {
            self.tokens.remove(&hash);
            return Err(Error::unauthorized(
                "the token has expired (unused for longer than TOKEN_TTL): log in again",
            ));
        }
        if now - session.last_used_at >= ttl_ms(touch_granularity(self.token_ttl)) {
            self.tokens.used(&hash, now);
            self.record_use(hash, now);
        }
        Ok(Some(session))
    }

    /// Records a use of a token at `at`, in the background: the request
    /// does not wait for the write (a lost one only makes `lastUsedAt` a
    /// little older).
    pub(crate) fn record_use(&self, token_hash: String, at: i64) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&token_hash, at).await {
                tracing::debug!(error = %e, "cannot record a token's use");
            }
        });
    }

    /// The cut-off of live tokens now: a token last used before it has expired.
    pub(super) fn live_since(&self) -> i64 {
        self.clock.now_ms().saturating_sub(ttl_ms(self.token_ttl))
    }

    /// The caller's user, from the token or the claim; `None` for an anonymous
    /// sandbox caller. Errors: 401 (bad token, claim not allowed), 403 (claim
    /// names another user than the token's), 400/404 (malformed/unknown claim).
    pub async fn identify(
        &self,
        caller: &Caller,
        claim: Option<Claim<'_>>,
    ) -> Result<Option<User>, Error> {
        if let Some(user) = self.token_user(caller).await? {
            record_user(&user);
            if let Some(claim) = claim
                && !claim_names(claim, &user)
            {
                return Err(Error::forbidden(
                    "the claimed identity is not the token's user",
                ));
            }
            return Ok(Some(user));
        }
        if !claims_allowed(self.auth_mode, caller.peer, caller.trusted_host) {
            return Err(Error::unauthorized(match self.auth_mode {
                AuthMode::Required => "a bearer token is required",
                _ if !caller.trusted_host => {
                    "a bearer token is required: the Host is neither a loopback name nor in ALLOWED_HOSTS"
                }
                _ => "a bearer token is required from a non-loopback address",
            }));
        }
        match claim {
            None => Ok(None),
            Some(claim) => {
                let user = self.resolve_claim(claim).await?;
                record_user(&user);
                Ok(Some(user))
            }
        }
    }

    /// The token's user; 401 without a valid token, in every mode.
    pub async fn require_token(&self, caller: &Caller) -> Result<User, Error> {
        let user = self
            .token_user(caller)
            .await?
            .ok_or_else(|| Error::unauthorized("a bearer token is required"))?;
        record_user(&user);
        Ok(user)
    }

    /// The token with this hash from the cache, or (when not cached, or
    /// `fresh`) from the store; `None` when it is unknown or revoked.
    async fn lookup_token(&self, hash: &str, fresh: bool) -> Result<Option<Checked>, Error> {
        if !fresh && let Some(checked) = self.tokens.get(hash) {
            return Ok(Some(checked));
        }
        let read_at = Instant::now();
        match self.store.session_by_token(hash).await? {
            Some(session) => Ok(self.tokens.put(hash.to_owned(), session, read_at)),
            None => {
                self.tokens.remove(hash);
                Ok(None)
            }
        }
    }

    /// Checks that the token with this hash still works (not revoked, not
    /// expired): from the cache, or from the store when `fresh` (a new
    /// connection, or one that may have missed a revocation). `None`: it
    /// does not.
    pub async fn check_token(
        &self,
        token_hash: &str,
        fresh: bool,
    ) -> Result<Option<Checked>, Error> {
        let now = self.clock.now_ms();
        Ok(self
            .lookup_token(token_hash, fresh)
            .await?
            .filter(|c| !is_expired(c.session.last_used_at, now, self.token_ttl)))
    }

    /// Records that an open WebSocket still uses the token with this hash
    /// (an open connection keeps its token alive), in the background.
    pub fn keep_token_alive(&self, token_hash: &str) {
        self.record_use(token_hash.to_owned(), self.clock.now_ms());
    }

    /// The token lifetime (`TOKEN_TTL`).
    pub fn token_ttl(&self) -> std::time::Duration {
        self.token_ttl
    }

    /// `rate_limited` when the caller's address is over the register/login limit.
    pub async fn check_auth_rate(&self, caller: &Caller) -> Result<(), Error> {
        self.limits
            .check_auth(caller.address())
            .await
            .map_err(|wait| {
                self.metrics.rate_limits.reject(RateLimitKind::Auth);
                Error::rate_limited(wait)
            })
    }

    async fn resolve_claim(&self, claim: Claim<'_>) -> Result<User, Error> {
        let raw = match claim {
            Claim::IdOrPhone(raw) => match uuid::Uuid::parse_str(raw.trim()) {
                Ok(id) => {
                    return self
                        .store
                        .user_by_id(id)
                        .await?
                        .ok_or_else(Error::user_not_found);
                }
                Err(_) => raw,
            },
            Claim::Phone(raw) => raw,
        };
        let phone = parse_phone(raw)?;
        self.store
            .user_by_phone(&phone)
            .await?
            .ok_or_else(Error::user_not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("socket address"))
    }

    #[test]
    fn loopback_mode_believes_only_loopback_peers() {
        for peer in [
            "127.0.0.1:5000",
            "127.8.9.10:1",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(
                claims_allowed(AuthMode::Loopback, addr(peer), true),
                "{peer}"
            );
            assert!(
                !claims_allowed(AuthMode::Loopback, addr(peer), false),
                "{peer} to a foreign Host"
            );
        }
        for peer in [
            "10.0.0.5:5000",
            "192.168.1.2:80",
            "[2001:db8::1]:443",
            "[::ffff:10.0.0.1]:80",
        ] {
            assert!(
                !claims_allowed(AuthMode::Loopback, addr(peer), true),
                "{peer}"
            );
        }
        assert!(!claims_allowed(AuthMode::Loopback, None, true));
    }

    #[test]
    fn user_agents_are_cleaned_and_bounded() {
        assert_eq!(
            clean_user_agent(b"  curl/8.5.0 "),
            Some("curl/8.5.0".into())
        );
        assert_eq!(clean_user_agent(b""), None);
        assert_eq!(clean_user_agent(b" \t "), None);
        assert_eq!(clean_user_agent(b"a\x01b\x7fc"), Some("abc".into()));
        assert_eq!(
            clean_user_agent(b"caf\xc3\xa9 \xff"),
            Some("caf\u{e9} \u{fffd}".into())
        );
        let long = "x".repeat(1_000);
        assert_eq!(
            clean_user_agent(long.as_bytes()).map(|ua| ua.chars().count()),
            Some(MAX_USER_AGENT_CHARS)
        );
    }

    #[test]
    fn open_believes_everyone_and_required_nobody() {
        assert!(claims_allowed(AuthMode::Open, addr("203.0.113.9:1"), false));
        assert!(!claims_allowed(
            AuthMode::Required,
            addr("127.0.0.1:1"),
            true
        ));
    }
}
