//! Secrets kept out of logs and error messages: a URL without its
//! password ([`redact`]) and a text with every secret of some URLs masked
//! ([`scrub`]). A leaf: it imports nothing of the server, so every layer
//! may use it.

/// A database, Redis or webhook URL without its secrets, for logs and error
/// messages: the user-info of `scheme://user:password@host` becomes `***`,
/// and so does the value of any `password=` parameter (a PostgreSQL URL may
/// carry one in its query; a key=value connection string too).
pub fn redact(url: &str) -> String {
    let without_userinfo = match (url.find("://"), url.rfind('@')) {
        // The last `@`: a password may contain an unencoded `@`.
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    };
    mask_password_params(&without_userinfo)
}

/// `text` (an error message, say) with every secret of each of `urls`
/// replaced: a whole URL by its [`redact`]ed form, and its password alone
/// (as written and percent-decoded) by `***`, wherever a library quoted it.
pub fn scrub(text: &str, urls: &[&str]) -> String {
    let mut text = text.to_owned();
    for url in urls {
        if url.is_empty() {
            continue;
        }
        text = text.replace(url, &redact(url));
        for secret in secrets(url) {
            text = text.replace(&secret, "***");
        }
    }
    text
}

/// The passwords in `url`: the user-info's, and `password=` values.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@'))
        && at > scheme + 3
        && let Some((_, password)) = url[scheme + 3..at].split_once(':')
    {
        found.push(password.to_owned());
        found.push(percent_decode(password));
    }
    let lower = url.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password=") {
        let start = from + i + "password=".len();
        let end = url[start..]
            .find(['&', ' ', ';'])
            .map_or(url.len(), |n| start + n);
        found.push(url[start..end].to_owned());
        found.push(percent_decode(&url[start..end]));
        from = end;
    }
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

fn mask_password_params(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(i) = lower[from..].find("password=") {
        let start = from + i + "password=".len();
        let end = text[start..]
            .find(['&', ' ', ';'])
            .map_or(text.len(), |n| start + n);
        out.push_str(&text[from..start]);
        out.push_str("***");
        from = end;
    }
    out.push_str(&text[from..]);
    out
}

/// `%XX` escapes decoded (invalid ones kept as written).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/missive"),
            "postgres://***@db:5432/missive"
        );
        assert_eq!(
            redact("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            redact("sqlite://data/missive.db"),
            "sqlite://data/missive.db"
        );
        assert_eq!(
            redact("postgres://me@db/missive?sslmode=disable&password=s3cret&x=1"),
            "postgres://***@db/missive?sslmode=disable&password=***&x=1"
        );
        assert_eq!(
            redact("host=db user=me password=s3cret dbname=m"),
            "host=db user=me password=*** dbname=m"
        );
        assert_eq!(redact("mysql://u:p@ss@db/x"), "mysql://***@db/x");
    }

    #[test]
    fn scrub_removes_a_password_wherever_a_library_quoted_it() {
        let url = "postgres://me:p%40ss%2Fw0rd@db/missive";
        let text =
            format!("cannot connect to {url}: auth failed for \"p@ss/w0rd\" (p%40ss%2Fw0rd)");
        let scrubbed = scrub(&text, &[url]);
        assert!(!scrubbed.contains("p@ss/w0rd"), "{scrubbed}");
        assert!(!scrubbed.contains("p%40ss%2Fw0rd"), "{scrubbed}");
        assert!(scrubbed.contains("postgres://***@db/missive"), "{scrubbed}");
    }
}
