//! Pagination parameters (`limit`, `offset`, `before`, `after`) and the
//! `Link: <…>; rel="next"` header.

use axum::http::{HeaderMap, HeaderValue, header};

use serde::Deserialize;

use super::auth::IdentityParams;
use super::error::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 200;
/// Largest `offset` accepted (deeper pages should use cursors).
pub const MAX_OFFSET: u32 = 1_000_000;

/// The page-size parameters of the list endpoints as the OpenAPI document
/// shows them (the handlers read them as text through [`ListParams`], so
/// that a bad value is the API's own 400).
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 200 (default 50). Out of range or not a number: 400
    /// `invalid_parameter`.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Number of items to skip from the start of the list (the most recent),
    /// 0 to 1,000,000 (default 0; deeper pages should use a cursor). Out of
    /// range or not a number: 400 `invalid_parameter`.
    #[param(minimum = 0, maximum = 1_000_000, default = 0)]
    pub offset: Option<u32>,
}

/// Query of the list endpoints: the claimed identity and the page wanted.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// `phoneNumber=` / `participant=`.
    #[serde(flatten)]
    pub identity: IdentityParams,
    /// Page size (`limit`).
    pub limit: Option<String>,
    /// Items to skip (`offset`).
    pub offset: Option<String>,
    /// Cursor: items older than this id (`before`).
    pub before: Option<String>,
    /// Cursor: items newer than this id (`after`; messages only).
    pub after: Option<String>,
}

impl ListParams {
    /// The page size and offset, validated.
    pub fn page(&self) -> Result<(u32, u32), ApiError> {
        Ok((
            parse_limit(self.limit.as_deref())?,
            parse_offset(self.offset.as_deref())?,
        ))
    }
}

/// Parses `limit`: 1–200, 50 when absent.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

/// Parses `offset`: 0 or more, 0 when absent.
pub fn parse_offset(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(0),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_OFFSET)
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "offset must be an integer from 0 to {MAX_OFFSET}"
                ))
            }),
    }
}

/// Builds a relative next-page URL: `path?k=v&…` with values percent-encoded.
pub fn next_url(path: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Headers carrying `Link: <url>; rel="next"` when there is a next page.
pub fn link_headers(next: Option<String>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(url) = next
        && let Ok(value) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\""))
    {
        headers.insert(header::LINK, value);
    }
    headers
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_50_and_stays_in_range() {
        assert_eq!(parse_limit(None).expect("default"), 50);
        assert_eq!(parse_limit(Some("1")).expect("min"), 1);
        assert_eq!(parse_limit(Some("200")).expect("max"), 200);
        for bad in ["0", "201", "-1", "x", "", "1.5", "99999999999"] {
            assert_eq!(
                parse_limit(Some(bad)).expect_err(bad).code().as_str(),
                "invalid_parameter",
                "{bad}"
            );
        }
    }

    #[test]
    fn offset_is_a_non_negative_integer() {
        assert_eq!(parse_offset(None).expect("default"), 0);
        assert_eq!(parse_offset(Some("120")).expect("ok"), 120);
        for bad in ["-1", "x", "1000001"] {
            assert!(parse_offset(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_url_encodes_values_and_skips_absent_ones() {
        let url = next_url(
            "/chats",
            &[
                ("phoneNumber", Some("+1234567890".into())),
                ("limit", Some("5".into())),
                ("before", None),
            ],
        );
        assert_eq!(url, "/chats?phoneNumber=%2B1234567890&limit=5");
        let headers = link_headers(Some(url));
        assert_eq!(
            headers[header::LINK],
            "</chats?phoneNumber=%2B1234567890&limit=5>; rel=\"next\""
        );
        assert!(link_headers(None).is_empty());
    }
}
