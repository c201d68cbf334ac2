//! Query strings of the list endpoints through axum's `Query` extractor (the
//! one `ApiQuery` wraps) into the server's `ListParams` / `IdentityParams`,
//! then the validation the handlers run (`page()`, `parse_id`, `claim()`).
//!
//! Properties: a query whose keys are distinct always extracts, with each
//! field equal to its decoded value; `page()` agrees with `parse_limit` and
//! `parse_offset`; the claim is `phoneNumber`, else `participant`.
#![no_main]

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use missive_server::http::auth::IdentityParams;
use missive_server::http::extract::parse_id;
use missive_server::http::pagination::{
    ListParams, MAX_LIMIT, MAX_OFFSET, parse_limit, parse_offset,
};
use missive_server::service::Claim;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    // hyper hands the handler a parsed URI; inputs that are not one never get here.
    let Ok(uri) = format!("/chats?{query}").parse::<Uri>() else {
        return;
    };
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .ok()
        .map(|Query(pairs)| pairs);
    let list = Query::<ListParams>::try_from_uri(&uri)
        .ok()
        .map(|Query(p)| p);
    let identity = Query::<IdentityParams>::try_from_uri(&uri)
        .ok()
        .map(|Query(p)| p);

    if let Some(pairs) = &pairs {
        let map: HashMap<&str, &str> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if map.len() == pairs.len() {
            let get = |k: &str| map.get(k).map(|v| (*v).to_owned());
            let list = list.as_ref().expect("a query with distinct keys extracts");
            assert_eq!(list.limit, get("limit"));
            assert_eq!(list.offset, get("offset"));
            assert_eq!(list.before, get("before"));
            assert_eq!(list.after, get("after"));
            assert_eq!(list.identity.phone_number, get("phoneNumber"));
            assert_eq!(list.identity.participant, get("participant"));
            let identity = identity
                .as_ref()
                .expect("a query with distinct keys extracts");
            assert_eq!(identity.phone_number, get("phoneNumber"));
            assert_eq!(identity.participant, get("participant"));
        }
    }

    if let Some(params) = &list {
        let limit = parse_limit(params.limit.as_deref()).ok();
        let offset = parse_offset(params.offset.as_deref()).ok();
        match params.page() {
            Ok((l, o)) => {
                assert_eq!((Some(l), Some(o)), (limit, offset));
                assert!((1..=MAX_LIMIT).contains(&l));
                assert!(o <= MAX_OFFSET);
                if params.limit.is_none() {
                    assert_eq!(l, 50);
                }
                if params.offset.is_none() {
                    assert_eq!(o, 0);
                }
            }
            Err(_) => assert!(limit.is_none() || offset.is_none()),
        }
        for raw in [&params.before, &params.after].into_iter().flatten() {
            if let Ok(id) = parse_id("before", raw) {
                assert_eq!(id.to_string().parse::<uuid::Uuid>().ok(), Some(id));
            }
        }
        let expected = params
            .identity
            .phone_number
            .as_deref()
            .or(params.identity.participant.as_deref());
        match params.identity.claim() {
            Some(Claim::Phone(claimed)) => assert_eq!(Some(claimed), expected),
            Some(other) => panic!("a list claim is a phone number, got {other:?}"),
            None => assert_eq!(expected, None),
        }
    }
});
