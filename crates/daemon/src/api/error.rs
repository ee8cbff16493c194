//! The one place engine errors become HTTP statuses and Docker's `{"message": …}` bodies.

use crate::engine::Error;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::StatusCode;

/// A JSON error response.
pub fn response(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = berth_api::ErrorBody { message: message.into() };
    (status, axum::Json(body)).into_response()
}

/// An engine error as an API response.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Error::NotModified => return StatusCode::NOT_MODIFIED.into_response(),
            // Docker answers 400 when the process cannot be executed, 500 otherwise.
            Error::StartFailed { .. } => StatusCode::BAD_REQUEST,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        };
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        }
        response(status, self.0.to_string())
    }
}

/// Result type for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Unknown paths, answered as Docker does.
pub async fn not_found(uri: hyper::Uri) -> Response<Body> {
    response(StatusCode::NOT_FOUND, format!("page not found: {}", uri.path()))
}

/// A request the handler could not parse.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(Error::InvalidParameter(message.into()))
}
