//! The HTTP side of identity: building a [`Caller`] from the `Authorization`
//! header and the peer address, and the `phoneNumber=`/`participant=` claim of
//! the read endpoints. Deciding who the caller is happens in the service.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use missive_protocol::openapi::PhoneNumber;
use serde::Deserialize;

use super::error::ApiError;
pub use crate::service::{Caller, Claim};

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(match parts.headers.get(AUTHORIZATION) {
            None => Caller::new(None, peer),
            Some(value) => match value.to_str().ok().and_then(bearer) {
                Some(token) => Caller::new(Some(token.to_owned()), peer),
                None => Caller::malformed(peer),
            },
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
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct IdentityParams {
    /// Claimed identity, believed where `AUTH_MODE` allows claims. Ignored in
    /// favour of the bearer token when both are present; a claim naming
    /// another user than the token's gets 403. A malformed number is 400
    /// `invalid_phone_number`.
    #[param(value_type = Option<PhoneNumber>, example = "+1234567890")]
    pub phone_number: Option<String>,
    /// Claimed identity, the sandbox spelling of `phoneNumber` (which wins
    /// when both are given).
    #[param(value_type = Option<PhoneNumber>, example = "+1234567890")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
