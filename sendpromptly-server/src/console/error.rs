//! [`PageError`]: why a console page or action failed, as the status and
//! the sentence its error page (or notice) shows. The one place where the
//! service layer's [`ServiceError`] becomes the console's words; nothing
//! here speaks of the HTTP API.

use axum::http::StatusCode;

use crate::service::ServiceError;
use crate::store::StoreError;

/// A failed console page or action: its status and message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// A 422 naming a form field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::invalid(param, message).into()
    }

    /// A 404: no such `what` (or another project's).
    pub fn not_found(what: &'static str) -> Self {
        ServiceError::NotFound(what).into()
    }

    /// A 413: the form is over the limit.
    pub fn payload_too_large() -> Self {
        PageError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "request body is larger than the 64 KiB limit".into(),
        }
    }

    /// The HTTP status of the page.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people (invalid fields are named).
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The console's words for a [`ServiceError`].
impl From<ServiceError> for PageError {
    fn from(err: ServiceError) -> Self {
        let (status, message) = match err {
            ServiceError::NotFound(what) => (StatusCode::NOT_FOUND, format!("no such {what}")),
            ServiceError::Invalid(invalid) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}: {}", invalid.param, invalid.message),
            ),
            ServiceError::UrlRefused(refused) => {
                (StatusCode::UNPROCESSABLE_ENTITY, refused.to_string())
            }
            ServiceError::Conflict { message, .. } => (StatusCode::CONFLICT, message),
            ServiceError::RepairUrlMissing => (
                StatusCode::CONFLICT,
                "This project has no repair URL, so there is nowhere to send a repair callback. \
                 Set one in Settings."
                    .into(),
            ),
            ServiceError::KeyRevoked => (
                StatusCode::UNAUTHORIZED,
                "the API key is unknown or was revoked".into(),
            ),
            ServiceError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ServiceError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is temporarily unavailable; nothing was recorded, retry the request"
                    .into(),
            ),
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; it was logged".into(),
                )
            }
        };
        PageError { status, message }
    }
}

impl From<StoreError> for PageError {
    fn from(err: StoreError) -> Self {
        ServiceError::from(err).into()
    }
}
