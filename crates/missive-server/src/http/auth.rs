//! Who is calling: a bearer token, or a claimed identity believed according
//! to `AUTH_MODE` (API.md §1).
//!
//! | mode       | token    | claim / anonymous sandbox access       |
//! |------------|----------|----------------------------------------|
//! | `open`     | accepted | from anyone                            |
//! | `loopback` | accepted | from loopback peers only, else 401     |
//! | `required` | required | never: 401 without a valid token       |
//!
//! A token always wins; a claim naming someone else than the token's user is a 403.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use missive_protocol::User;

use serde::Deserialize;

use super::error::ApiError;
use crate::config::AuthMode;
use crate::domain::PhoneNumber;
use crate::security::tokens::hash_token;
use crate::state::AppState;

/// Whether a peer may use claimed identity (and anonymous sandbox access) under `mode`.
pub fn claims_allowed(mode: AuthMode, peer: Option<SocketAddr>) -> bool {
    match mode {
        AuthMode::Open => true,
        AuthMode::Loopback => peer.is_some_and(|p| p.ip().to_canonical().is_loopback()),
        AuthMode::Required => false,
    }
}

/// What a request says about its caller, before anything is looked up.
#[derive(Debug, Clone)]
pub struct Caller {
    token: Option<String>,
    malformed_authorization: bool,
    peer: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let (token, malformed) = match parts.headers.get(AUTHORIZATION) {
            None => (None, false),
            Some(value) => match value.to_str().ok().and_then(bearer) {
                Some(token) => (Some(token.to_owned()), false),
                None => (None, true),
            },
        };
        Ok(Caller {
            token,
            malformed_authorization: malformed,
            peer,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The claimed identity of a read: `phoneNumber=` (or `participant=`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityParams {
    /// Claimed phone number.
    pub phone_number: Option<String>,
    /// Same as `phoneNumber`.
    pub participant: Option<String>,
}

impl IdentityParams {
    /// The claim, if any.
    pub fn claim(&self) -> Option<Claim<'_>> {
        self.phone_number
            .as_deref()
            .or(self.participant.as_deref())
            .map(Claim::Phone)
    }
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
    /// A caller with a token (the WebSocket's `?token=`) or none, from `peer`.
    pub fn new(token: Option<String>, peer: Option<SocketAddr>) -> Self {
        Caller {
            token,
            malformed_authorization: false,
            peer,
        }
    }

    /// Uses `token` (the WebSocket's `?token=`) when no Authorization header was sent.
    pub fn or_token(mut self, token: Option<String>) -> Self {
        if self.token.is_none() && !self.malformed_authorization {
            self.token = token.filter(|t| !t.is_empty());
        }
        self
    }

    /// The user of the bearer token, if one was sent; 401 if it is not valid.
    async fn token_user(&self, state: &AppState) -> Result<Option<User>, ApiError> {
        if self.malformed_authorization {
            return Err(ApiError::unauthorized(
                "the Authorization header must be 'Bearer <token>'",
            ));
        }
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let hash = hash_token(token);
        if let Some(user) = state.tokens.get(&hash) {
            return Ok(Some(user));
        }
        match state.store.user_by_token(&hash).await? {
            Some(user) => {
                state.tokens.put(hash, user.clone());
                Ok(Some(user))
            }
            None => Err(ApiError::unauthorized("the token is invalid or revoked")),
        }
    }

    /// The caller's user, from the token or the claim; `None` for an anonymous
    /// sandbox caller. Errors: 401 (bad token, claim not allowed), 403 (claim
    /// names another user than the token's), 400/404 (malformed/unknown claim).
    pub async fn identify(
        &self,
        state: &AppState,
        claim: Option<Claim<'_>>,
    ) -> Result<Option<User>, ApiError> {
        if let Some(user) = self.token_user(state).await? {
            if let Some(claim) = claim
                && !claim_names(claim, &user)
            {
                return Err(ApiError::forbidden(
                    "the claimed identity is not the token's user",
                ));
            }
            return Ok(Some(user));
        }
        if !claims_allowed(state.config.auth_mode, self.peer) {
            return Err(ApiError::unauthorized(match state.config.auth_mode {
                AuthMode::Required => "a bearer token is required",
                _ => "a bearer token is required from a non-loopback address",
            }));
        }
        match claim {
            None => Ok(None),
            Some(claim) => resolve_claim(state, claim).await.map(Some),
        }
    }

    /// The bearer token as sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The peer's IP address (for per-address rate limits).
    pub fn address(&self) -> std::net::IpAddr {
        self.peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| {
            p.ip().to_canonical()
        })
    }

    /// 429 when this address is over the register/login rate limit.
    pub fn check_auth_rate(&self, state: &AppState) -> Result<(), ApiError> {
        state
            .limits
            .check_auth(self.address())
            .map_err(|wait| ApiError::rate_limited(wait.as_secs_f64().ceil() as u64))
    }

    /// The token's user; 401 without a valid token, in every mode.
    pub async fn require_token(&self, state: &AppState) -> Result<User, ApiError> {
        self.token_user(state)
            .await?
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))
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

async fn resolve_claim(state: &AppState, claim: Claim<'_>) -> Result<User, ApiError> {
    let raw = match claim {
        Claim::IdOrPhone(raw) => match uuid::Uuid::parse_str(raw.trim()) {
            Ok(id) => {
                return state
                    .store
                    .user_by_id(id)
                    .await?
                    .ok_or_else(ApiError::user_not_found);
            }
            Err(_) => raw,
        },
        Claim::Phone(raw) => raw,
    };
    let phone = PhoneNumber::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?;
    state
        .store
        .user_by_phone(&phone)
        .await?
        .ok_or_else(ApiError::user_not_found)
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
            assert!(claims_allowed(AuthMode::Loopback, addr(peer)), "{peer}");
        }
        for peer in [
            "10.0.0.5:5000",
            "192.168.1.2:80",
            "[2001:db8::1]:443",
            "[::ffff:10.0.0.1]:80",
        ] {
            assert!(!claims_allowed(AuthMode::Loopback, addr(peer)), "{peer}");
        }
        assert!(!claims_allowed(AuthMode::Loopback, None));
    }

    #[test]
    fn open_believes_everyone_and_required_nobody() {
        assert!(claims_allowed(AuthMode::Open, addr("203.0.113.9:1")));
        assert!(!claims_allowed(AuthMode::Required, addr("127.0.0.1:1")));
    }

    #[test]
    fn bearer_header_is_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
