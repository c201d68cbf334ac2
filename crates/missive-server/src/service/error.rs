//! The one error vocabulary of missive: a stable snake_case [`ErrorCode`] and
//! a human message. The HTTP layer maps it to a status and the
//! `{"code","message"}` body, the WebSocket gateway to an `error` frame; each
//! in one place.

use std::fmt;
use std::time::Duration;

use crate::store::StoreError;

/// Every error code a client can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A malformed body, a missing or wrongly typed field, a bad combination.
    InvalidRequest,
    /// A bad path or query value (ids, limits, cursors).
    InvalidParameter,
    /// Empty or over-long message content.
    InvalidContent,
    /// A phone number that is not `+` and 7–15 digits.
    InvalidPhoneNumber,
    /// A bad participant list (too few, too many, duplicates, oneself).
    InvalidParticipants,
    /// A WebSocket frame that is not a known command.
    InvalidFrame,
    /// A WebSocket frame over the size limit.
    FrameTooLarge,
    /// A wrong or expired login code.
    InvalidCode,
    /// No valid identity.
    Unauthorized,
    /// An identity that may not do this.
    Forbidden,
    /// No such route.
    NotFound,
    /// No such user.
    UserNotFound,
    /// No such chat, or the caller is not in it.
    ChatNotFound,
    /// No such message in that chat.
    MessageNotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// The phone number is registered already.
    PhoneTaken,
    /// A `clientMessageId` reused for another chat or other content.
    IdempotencyConflict,
    /// A body over 64 KiB.
    PayloadTooLarge,
    /// Request headers over 16 KiB (or more than 100 of them).
    HeadersTooLarge,
    /// A request URI too long for the server to read.
    UriTooLong,
    /// Over a rate limit.
    RateLimited,
    /// A request body that did not arrive within `HTTP_BODY_TIMEOUT`.
    RequestTimeout,
    /// Over a connection cap (`MAX_SOCKETS_PER_USER`, `MAX_CONNECTIONS_PER_ADDRESS`).
    TooManyConnections,
    /// The SMS gateway did not take the login code.
    CodeDeliveryFailed,
    /// A bug; details only in the server log.
    Internal,
    /// The database is unreachable or cannot commit.
    Unavailable,
}

impl ErrorCode {
    /// The wire form.
    pub const fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidParameter => "invalid_parameter",
            InvalidContent => "invalid_content",
            InvalidPhoneNumber => "invalid_phone_number",
            InvalidParticipants => "invalid_participants",
            InvalidFrame => "invalid_frame",
            FrameTooLarge => "frame_too_large",
            InvalidCode => "invalid_code",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            NotFound => "not_found",
            UserNotFound => "user_not_found",
            ChatNotFound => "chat_not_found",
            MessageNotFound => "message_not_found",
            MethodNotAllowed => "method_not_allowed",
            PhoneTaken => "phone_taken",
            IdempotencyConflict => "idempotency_conflict",
            PayloadTooLarge => "payload_too_large",
            HeadersTooLarge => "headers_too_large",
            UriTooLong => "uri_too_long",
            RateLimited => "rate_limited",
            RequestTimeout => "request_timeout",
            TooManyConnections => "too_many_connections",
            CodeDeliveryFailed => "code_delivery_failed",
            Internal => "internal",
            Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a use case was refused or failed.
#[derive(Debug)]
pub struct Error {
    code: ErrorCode,
    message: String,
    /// For 5xx: what really happened, for the log only.
    cause: Option<String>,
    /// For `rate_limited`: seconds until a retry may succeed.
    retry_after: Option<u64>,
}

impl Error {
    /// An error with a code and a human message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// `invalid_parameter`: a bad path or query value.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message)
    }

    /// `invalid_request`: a bad body.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `user_not_found`.
    pub fn user_not_found() -> Self {
        Self::new(
            ErrorCode::UserNotFound,
            "no user has that phone number or id",
        )
    }

    /// `rate_limited`, retry after `wait` (rounded up to whole seconds, at least 1).
    pub fn rate_limited(wait: Duration) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited, "too many requests; slow down");
        e.retry_after = Some((wait.as_secs_f64().ceil() as u64).max(1));
        e
    }

    /// `internal`, keeping `cause` for the log only.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Internal, "internal server error");
        e.cause = Some(cause.into());
        e
    }

    /// `unavailable`, keeping `cause` for the log only.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Unavailable, "service temporarily unavailable");
        e.cause = Some(cause.into());
        e
    }

    /// Replaces the human message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The hidden cause of an internal or unavailable error.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// The same error, telling the client to retry in `secs` (at least 1).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// Seconds to wait before retrying, for `rate_limited` and `too_many_connections`.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PhoneTaken => Error::new(
                ErrorCode::PhoneTaken,
                "that phone number is already registered",
            ),
            StoreError::IdempotencyConflict => Error::new(
                ErrorCode::IdempotencyConflict,
                "this clientMessageId was already used for another chat or other content",
            ),
            StoreError::UserNotFound => Error::user_not_found(),
            StoreError::ChatNotFound => Error::new(ErrorCode::ChatNotFound, "no such chat"),
            StoreError::MessageNotFound => {
                Error::new(ErrorCode::MessageNotFound, "no such message in this chat")
            }
            StoreError::InvalidCursor => {
                Error::invalid_parameter("the pagination cursor names no item of this list")
            }
            StoreError::Unavailable(cause) => Error::unavailable(cause),
            StoreError::Corrupt(cause) => Error::unavailable(format!("database corrupt: {cause}")),
            StoreError::Internal(cause) => Error::internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_documented_codes() {
        let cases = [
            (StoreError::PhoneTaken, "phone_taken"),
            (StoreError::IdempotencyConflict, "idempotency_conflict"),
            (StoreError::UserNotFound, "user_not_found"),
            (StoreError::ChatNotFound, "chat_not_found"),
            (StoreError::MessageNotFound, "message_not_found"),
            (StoreError::InvalidCursor, "invalid_parameter"),
            (StoreError::Unavailable("disk".into()), "unavailable"),
            (StoreError::Corrupt("malformed".into()), "unavailable"),
            (StoreError::Internal("bug".into()), "internal"),
        ];
        for (error, code) in cases {
            assert_eq!(Error::from(error).code().as_str(), code);
        }
    }

    #[test]
    fn internal_causes_stay_out_of_the_message() {
        let e = Error::internal("SELECT went wrong at /var/lib/db");
        assert_eq!(e.message(), "internal server error");
        assert_eq!(e.cause(), Some("SELECT went wrong at /var/lib/db"));
    }

    #[test]
    fn rate_limits_round_up_to_at_least_a_second() {
        assert_eq!(Error::rate_limited(Duration::ZERO).retry_after(), Some(1));
        assert_eq!(
            Error::rate_limited(Duration::from_millis(1500)).retry_after(),
            Some(2)
        );
    }
}
