//! One-time login codes (README, "Authentication"): six digits from the OS CSPRNG, valid
//! five minutes, five attempts, stored only as a hash, handed to a
//! [`CodeSender`]: the server log (development) or an SMS gateway webhook.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// How long a code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// Wrong tries before a code is burned.
pub const MAX_ATTEMPTS: i64 = 5;
/// How long the webhook may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// A new 6-digit code, uniformly distributed (rejection sampling, no modulo bias).
pub fn new_code() -> Result<String, getrandom::Error> {
    // 4_294_000_000 is the largest multiple of 1_000_000 below 2^32.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes)?;
        let n = u32::from_le_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// The stored form of a code, bound to its phone number.
pub fn hash_code(phone: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{phone}:{code}").as_bytes()))
}

/// Whether `raw` looks like a code at all (six ASCII digits).
pub fn is_well_formed(raw: &str) -> bool {
    raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit())
}

/// Why a code could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Delivers login codes to users.
#[async_trait]
pub trait CodeSender: Send + Sync + 'static {
    /// Hands `code` for `phone` to the delivery channel.
    async fn send(&self, phone: &str, code: &str) -> Result<(), DeliveryError>;
}

/// Development sender: writes the code to the server log.
#[derive(Debug, Default)]
pub struct LogCodeSender;

#[async_trait]
impl CodeSender for LogCodeSender {
    async fn send(&self, phone: &str, code: &str) -> Result<(), DeliveryError> {
        tracing::warn!(
            "login code for {phone}: {code} (development sender: set OTP_WEBHOOK_URL to send real SMS)"
        );
        Ok(())
    }
}

/// Posts `{"phoneNumber","code"}` to an SMS gateway.
#[derive(Debug, Clone)]
pub struct WebhookCodeSender {
    client: reqwest::Client,
    url: String,
}

impl WebhookCodeSender {
    /// A sender posting to `url` (`http://` or `https://`; TLS by rustls with
    /// the system's root certificates).
    pub fn new(url: String) -> anyhow::Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!(
                "OTP_WEBHOOK_URL must be an http:// or https:// URL, got {:?}",
                crate::redaction::redact(&url)
            );
        }
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()?;
        Ok(WebhookCodeSender { client, url })
    }
}

#[async_trait]
impl CodeSender for WebhookCodeSender {
    async fn send(&self, phone: &str, code: &str) -> Result<(), DeliveryError> {
        let body = serde_json::json!({ "phoneNumber": phone, "code": code });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                // reqwest quotes the URL, which may carry credentials.
                let error = crate::redaction::scrub(&e.to_string(), &[&self.url]);
                DeliveryError(format!("the SMS gateway did not answer: {error}"))
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError(format!(
                "the SMS gateway answered {}",
                response.status()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..20).map(|_| new_code().expect("code")).collect();
        assert!(codes.iter().all(|c| is_well_formed(c)));
        assert!(codes.iter().any(|c| c != &codes[0]));
    }

    #[test]
    fn code_hashes_are_bound_to_the_phone() {
        assert_ne!(
            hash_code("+1234567", "123456"),
            hash_code("+7654321", "123456")
        );
        assert_eq!(
            hash_code("+1234567", "123456"),
            hash_code("+1234567", "123456")
        );
    }

    #[test]
    fn malformed_codes_are_recognised() {
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
