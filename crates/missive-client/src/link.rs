//! Reading the `Link: <url>; rel="next"` pagination header (RFC 8288).

/// The target of the `rel="next"` link in a `Link` header value, unresolved.
///
/// Accepts several comma-separated links, quoted or bare `rel` values and
/// space-separated relation lists (`rel="next last"`).
pub fn next_target(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        // Parameters run until the next link, which starts with `,` then `<`.
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        if params.split(';').any(is_rel_next) {
            return Some(target.trim());
        }
        rest = &after[params_end..];
    }
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    if !name.trim().eq_ignore_ascii_case("rel") {
        return false;
    }
    let value = value.trim().trim_end_matches(',').trim().trim_matches('"');
    value
        .split_ascii_whitespace()
        .any(|rel| rel.eq_ignore_ascii_case("next"))
}

#[cfg(test)]
mod tests {
    use super::next_target;

    #[test]
    fn finds_a_relative_next_link() {
        let header = r#"</chats/abc/messages?limit=50&before=def>; rel="next""#;
        assert_eq!(
            next_target(header),
            Some("/chats/abc/messages?limit=50&before=def")
        );
    }

    #[test]
    fn picks_next_among_several_links() {
        let header = r#"<http://h/a?p=1>; rel="prev", <http://h/a?p=3>; rel=next"#;
        assert_eq!(next_target(header), Some("http://h/a?p=3"));
        let header = r#"<http://h/a?p=3>; title="x"; rel="next last""#;
        assert_eq!(next_target(header), Some("http://h/a?p=3"));
    }

    #[test]
    fn ignores_links_that_are_not_next() {
        assert_eq!(next_target(r#"</a>; rel="prev""#), None);
        assert_eq!(next_target(""), None);
        assert_eq!(next_target("garbage"), None);
    }
}
