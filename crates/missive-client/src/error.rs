//! The client's error type: an API error answer, a transport failure, or a
//! body that does not decode.

use missive_protocol::ErrorBody;

/// Why a call did not produce the expected typed answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered 4xx/5xx with the documented `{"code","message"}` body.
    #[error("the server answered {status} {}: {}", body.code, body.message)]
    Api {
        /// HTTP status code.
        status: u16,
        /// The decoded error body.
        body: ErrorBody,
    },
    /// The request could not be sent or its answer could not be read.
    #[error("http transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer's body is not the JSON the API documents for that status.
    #[error("could not decode the {status} answer ({source}); body: {body}")]
    Decode {
        /// HTTP status code.
        status: u16,
        /// The raw body text.
        body: String,
        /// What serde complained about.
        #[source]
        source: serde_json::Error,
    },
    /// A base URL or a `Link` target is not a valid URL.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The offending text.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            ClientError::Http(err) => err.status().map(|s| s.as_u16()),
            ClientError::InvalidUrl { .. } => None,
        }
    }

    /// The API error body, when the server answered with one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The API error `code`, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        self.error_body().map(|body| body.code.as_str())
    }
}
