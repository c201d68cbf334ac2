//! The HTTP side of identity: building a [`Caller`] from the `Authorization`
//! and `User-Agent` headers and the peer address, and the `phoneNumber=`/`participant=` claim of
//! the read endpoints. Deciding who the caller is happens in the service.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST, USER_AGENT};
use axum::http::request::Parts;
use missive_protocol::openapi::PhoneNumber;
use serde::Deserialize;

use ipnet::IpNet;

use super::error::ApiError;
pub use crate::service::{Caller, Claim};
use crate::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_address(c.0, &parts.headers, &state.config.trusted_proxies));
        let caller = match parts.headers.get(AUTHORIZATION) {
            None => Caller::new(None, peer),
            Some(value) => match value.to_str().ok().and_then(bearer) {
                Some(token) => Caller::new(Some(token.to_owned()), peer),
                None => Caller::malformed(peer),
            },
        };
        let trusted_host = request_host(parts)
            .is_some_and(|host| host_is_trusted(host, &state.config.allowed_hosts));
        Ok(caller
            .with_user_agent(parts.headers.get(USER_AGENT).map(|v| v.as_bytes()))
            .with_trusted_host(trusted_host))
    }
}

/// The host the request was addressed to: the authority of an absolute-form
/// target, or else the one `Host` header (none, or several: `None`).
fn request_host(parts: &Parts) -> Option<&str> {
    if let Some(authority) = parts.uri.authority() {
        return Some(authority.as_str());
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    host.to_str().ok()
}

/// Whether a `Host` value (`name`, `name:port`, `[v6]:port`) names this
/// machine's loopback — `localhost`, an address of 127.0.0.0/8, `[::1]` —
/// or one of `allowed` (`ALLOWED_HOSTS`: exact names, or `.example.com` for
/// that domain and its subdomains), whatever the port. A name that resolves
/// to 127.0.0.1 is not enough: anyone can point their domain at it (DNS
/// rebinding), so only names that cannot be rebound, or that the operator
/// listed, are trusted.
pub fn host_is_trusted(host: &str, allowed: &[String]) -> bool {
    let Some(name) = host_name(host) else {
        return false;
    };
    let loopback = name == "localhost"
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    loopback
        || allowed.iter().any(|entry| match entry.strip_prefix('.') {
            Some(domain) => {
                name == domain
                    || name
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
            }
            None => name == *entry,
        })
}

/// The name (or address, without brackets) of a `Host` value, lower-cased,
/// without its port and a final dot; `None` when it is malformed.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in
/// which case the nearest address its `Forwarded` (or `X-Forwarded-For`)
/// chain names that is not itself a trusted proxy. The result feeds the
/// per-address rate limits and the `loopback` decision, so an untrusted peer
/// can never choose it.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = forwarded_for(headers);
    if chain.is_empty() {
        chain = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect();
    }
    // Right to left: the hops our proxies added come last.
    match chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(chain.first())
    {
        Some(ip) => SocketAddr::new(*ip, 0),
        None => peer,
    }
}

/// The `for=` addresses of `Forwarded` headers (RFC 7239), in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                if !key.trim().eq_ignore_ascii_case("for") {
                    return None;
                }
                let value = value.trim().trim_matches('"');
                // `[2001:db8::1]:4711`, `192.0.2.60:80` or a bare address.
                let host = match value.strip_prefix('[') {
                    Some(rest) => rest.split(']').next()?,
                    None => value
                        .split(':')
                        .next()
                        .filter(|_| value.matches(':').count() <= 1)?,
                };
                host.parse::<IpAddr>().ok()
            })
        })
        .collect()
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("a header value"));
        }
        map
    }

    fn nets(raw: &[&str]) -> Vec<IpNet> {
        raw.iter()
            .map(|n| crate::config::parse_net(n).expect("a net"))
            .collect()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let peer: SocketAddr = "198.51.100.7:5000".parse().expect("addr");
        let spoof = headers(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
        ]);
        assert_eq!(client_address(peer, &spoof, &[]), peer);
        assert_eq!(client_address(peer, &spoof, &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let proxy: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let via = |pairs| {
            client_address(proxy, &headers(pairs), &trusted)
                .ip()
                .to_string()
        };
        // The client may prepend anything; only what our proxies appended counts.
        assert_eq!(
            via(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.2.3")]),
            "203.0.113.9"
        );
        assert_eq!(
            via(&[(
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""
            )]),
            "2001:db8::1"
        );
        assert_eq!(via(&[("forwarded", "for=192.0.2.60:8080")]), "192.0.2.60");
        // No header: the proxy itself.
        assert_eq!(via(&[]), "127.0.0.1");
    }

    #[test]
    fn only_loopback_and_allowed_hosts_are_trusted() {
        let allowed = vec!["chat.internal".to_owned(), ".dev.example".to_owned()];
        for host in [
            "localhost",
            "LocalHost:8080",
            "localhost.:80",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
            "chat.internal:8080",
            "dev.example",
            "a.b.dev.example:443",
        ] {
            assert!(host_is_trusted(host, &allowed), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "evildev.example",
            "chat.internal.evil",
            "10.0.0.1:80",
            "[2001:db8::1]:80",
            "",
            ":80",
            "localhost:",
            "localhost:80x",
            "[::1",
            "user@localhost",
        ] {
            assert!(!host_is_trusted(host, &allowed), "{host}");
        }
        assert!(!host_is_trusted("chat.internal", &[]));
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
