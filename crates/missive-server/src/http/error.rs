//! The API's error type: every 4xx/5xx is `{"code","message"}` (API.md §2).
//! Internal causes never reach the client; they ride along in a response
//! extension and the request logger writes them once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use missive_protocol::ErrorBody;

use crate::store::StoreError;

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    cause: Option<String>,
    retry_after: Option<u64>,
}

/// The hidden cause of a 5xx, for the request log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl ApiError {
    /// Any error with a status, a stable code and a human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `invalid_parameter`: a bad path or query value.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_parameter", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 404 `user_not_found`.
    pub fn user_not_found() -> Self {
        Self::not_found("user_not_found", "no user has that phone number or id")
    }

    /// 429 `rate_limited` with `Retry-After` in seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 500 `internal`, logging `cause` but not showing it.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        );
        e.cause = Some(cause.into());
        e
    }

    /// 503 `unavailable`, logging `cause` but not showing it.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service temporarily unavailable",
        );
        e.cause = Some(cause.into());
        e
    }

    /// Replaces the human message.
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PhoneTaken => ApiError::new(
                StatusCode::CONFLICT,
                "phone_taken",
                "that phone number is already registered",
            ),
            StoreError::UserNotFound => ApiError::user_not_found(),
            StoreError::ChatNotFound => ApiError::not_found("chat_not_found", "no such chat"),
            StoreError::MessageNotFound => {
                ApiError::not_found("message_not_found", "no such message in this chat")
            }
            StoreError::InvalidCursor => {
                ApiError::invalid_parameter("the pagination cursor names no item of this list")
            }
            StoreError::Unavailable(cause) => ApiError::unavailable(cause),
            StoreError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_documented_statuses() {
        let cases = [
            (StoreError::PhoneTaken, 409, "phone_taken"),
            (StoreError::UserNotFound, 404, "user_not_found"),
            (StoreError::ChatNotFound, 404, "chat_not_found"),
            (StoreError::MessageNotFound, 404, "message_not_found"),
            (StoreError::InvalidCursor, 400, "invalid_parameter"),
            (StoreError::Unavailable("disk".into()), 503, "unavailable"),
            (StoreError::Internal("bug".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
        }
    }

    #[test]
    fn internal_causes_stay_out_of_the_body() {
        let api = ApiError::internal("SELECT went wrong at /var/lib/db");
        assert_eq!(api.message(), "internal server error");
        let response = api.into_response();
        assert!(response.extensions().get::<InternalCause>().is_some());
    }

    #[test]
    fn rate_limited_answers_carry_retry_after() {
        let response = ApiError::rate_limited(0).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
