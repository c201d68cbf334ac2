//! Pagination and cursor parsing: `limit=`, `offset=`, `before=`/`after=`
//! ids (`http::pagination`, `http::extract::parse_id`), `since=` of `GET /ws`
//! (`http::ws::parse_cursor`), and the `Link: rel="next"` URL built from
//! client-supplied values.
//!
//! Properties: `limit` is accepted exactly when it is a decimal integer from
//! 1 to 200, `offset` from 0 to 1,000,000, a cursor from 0 to `i64::MAX`,
//! each with its value; a parsed id re-parses from its canonical form; a
//! next-page URL decodes back to the values it was built from and always
//! makes a valid `Link` header.
#![no_main]

use axum::extract::Query;
use axum::http::{Uri, header};
use libfuzzer_sys::fuzz_target;
use missive_fuzz::{signed, unsigned};
use missive_server::http::ws::parse_cursor;
use missive_server::http::extract::parse_id;
use missive_server::http::pagination::{
    MAX_LIMIT, MAX_OFFSET, link_headers, next_url, parse_limit, parse_offset,
};
use missive_server::service::ErrorCode;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let raw = text.as_ref();

    let limit = unsigned(raw).filter(|n| (1..=u128::from(MAX_LIMIT)).contains(n));
    match parse_limit(Some(raw)) {
        Ok(n) => {
            assert_eq!(Some(u128::from(n)), limit, "limit {raw:?}");
            assert!((1..=200).contains(&n));
        }
        Err(e) => {
            assert_eq!(limit, None, "limit {raw:?}");
            assert_eq!(e.code(), ErrorCode::InvalidParameter);
        }
    }

    let offset = unsigned(raw).filter(|n| *n <= u128::from(MAX_OFFSET));
    match parse_offset(Some(raw)) {
        Ok(n) => assert_eq!(Some(u128::from(n)), offset, "offset {raw:?}"),
        Err(e) => {
            assert_eq!(offset, None, "offset {raw:?}");
            assert_eq!(e.code(), ErrorCode::InvalidParameter);
        }
    }

    let cursor = signed(raw).filter(|n| (0..=i128::from(i64::MAX)).contains(n));
    match parse_cursor(raw) {
        Ok(n) => assert_eq!(Some(i128::from(n)), cursor, "since {raw:?}"),
        Err(e) => {
            assert_eq!(cursor, None, "since {raw:?}");
            assert_eq!(e.code(), ErrorCode::InvalidParameter);
        }
    }

    match parse_id("before", raw) {
        Ok(id) => {
            assert_eq!(parse_id("before", &id.to_string()).expect("re-parses"), id);
            assert_eq!(uuid::Uuid::parse_str(raw.trim()).ok(), Some(id));
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidParameter);
            assert!(e.message().starts_with("before must be a UUID"), "{e}");
        }
    }

    // The next-page URL carries client-supplied values back to the client.
    let url = next_url(
        "/chats",
        &[
            ("phoneNumber", Some(raw.to_owned())),
            ("participant", None),
            ("limit", Some("50".into())),
        ],
    );
    let headers = link_headers(Some(url.clone()));
    assert!(
        headers.contains_key(header::LINK),
        "no Link header for {url:?}"
    );
    let uri: Uri = url.parse().expect("the next URL is a valid URI");
    let Query(pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(&uri).expect("the next URL's query decodes");
    assert_eq!(
        pairs,
        vec![
            ("phoneNumber".to_owned(), raw.to_owned()),
            ("limit".to_owned(), "50".to_owned())
        ]
    );
});
