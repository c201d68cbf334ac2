//! The API's error answers: every 4xx/5xx is `{"code","message"}`. The
//! service's [`Error`] is mapped to an HTTP status here, in one place.
//! Internal causes never reach the client; they ride along in a response
//! extension and the request logger writes them once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use missive_protocol::ErrorBody;

use crate::service::{Error, ErrorCode};

/// An error answer of the API: the service's error, answered over HTTP.
pub type ApiError = Error;

/// The hidden cause of a 5xx, for the request log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// The HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidRequest | InvalidParameter | InvalidContent | InvalidPhoneNumber
        | InvalidParticipants | InvalidFrame | FrameTooLarge => StatusCode::BAD_REQUEST,
        InvalidCode | Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden => StatusCode::FORBIDDEN,
        NotFound | UserNotFound | ChatNotFound | MessageNotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        PhoneTaken | IdempotencyConflict => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        UriTooLong => StatusCode::URI_TOO_LONG,
        RateLimited | TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        CodeDeliveryFailed => StatusCode::BAD_GATEWAY,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code().as_str().to_owned(),
            message: self.message().to_owned(),
        };
        let mut response = (status_of(self.code()), Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause() {
            response
                .extensions_mut()
                .insert(InternalCause(cause.to_owned()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::StoreError;

    #[test]
    fn store_errors_map_to_documented_statuses() {
        let cases = [
            (StoreError::PhoneTaken, 409),
            (StoreError::IdempotencyConflict, 409),
            (StoreError::UserNotFound, 404),
            (StoreError::ChatNotFound, 404),
            (StoreError::MessageNotFound, 404),
            (StoreError::InvalidCursor, 400),
            (StoreError::Unavailable("disk".into()), 503),
            (StoreError::Internal("bug".into()), 500),
        ];
        for (error, status) in cases {
            let response = Error::from(error).into_response();
            assert_eq!(response.status().as_u16(), status);
        }
    }

    #[test]
    fn internal_causes_stay_out_of_the_body() {
        let response = Error::internal("SELECT went wrong at /var/lib/db").into_response();
        assert!(response.extensions().get::<InternalCause>().is_some());
    }

    #[test]
    fn rate_limited_answers_carry_retry_after() {
        let response = Error::rate_limited(Duration::ZERO).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
