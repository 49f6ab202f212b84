//! [`ApiError`]: every error the HTTP API returns, and the one place where
//! errors (the service layer's [`ServiceError`] among them) become HTTP
//! statuses and `{"error": {type, message, param}}` bodies.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sendpromptly_core::machine::TransitionError;
use sendpromptly_core::validation::ValidationError;
use serde::Serialize;

use crate::service::ServiceError;
use crate::store::StoreError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// 400: a malformed request other than JSON (bad header, path…).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The offending parameter.
        param: Option<String>,
    },
    /// 401: no API key.
    #[error("missing API key: send `Authorization: Bearer sp_…`")]
    MissingApiKey,
    /// 401: the key is unknown or revoked.
    #[error("invalid API key: it is unknown or was revoked")]
    InvalidApiKey,
    /// 403: the key lacks the scope the route requires.
    #[error(
        "this API key has the scope {has} but this endpoint requires `{required}`: create a key with it (`sendpromptly key create --project … --scope {required}`, or Settings → API keys in the console) and use that one"
    )]
    InsufficientScope {
        /// The scope the route requires.
        required: sendpromptly_core::scope::Scope,
        /// The key's scopes.
        has: sendpromptly_core::scope::ScopeSet,
    },
    /// 404: no such object (or it belongs to another project).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// 409: the request conflicts with the object's state.
    #[error("{message}")]
    Conflict {
        /// A machine-readable type, e.g. `reprocess_in_flight`.
        kind: &'static str,
        /// What to do about it.
        message: String,
    },
    /// 409: a request with the same idempotency key is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry after it finishes")]
    IdempotencyInFlight,
    /// 413: the body is over the limit.
    #[error("request body is larger than the 64 KiB limit")]
    PayloadTooLarge,
    /// A provider tap delivery over its limit.
    #[error("the delivery is larger than the provider tap's 1 MiB limit")]
    ProviderPayloadTooLarge,
    /// 415: the body is not declared as JSON.
    #[error("send the body as JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 422: a field breaks the contract's rules.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// 422: the idempotency key was used with another request.
    #[error(
        "this Idempotency-Key was already used with a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// 408: the request (body upload included) took longer than the server allows.
    #[error("the request took too long to arrive or to complete; send it again")]
    RequestTimeout,
    /// 429: slow down.
    #[error("too many requests; retry after {retry_after_seconds} seconds")]
    RateLimited {
        /// Seconds to wait.
        retry_after_seconds: u64,
    },
    /// 503: storage is unreachable or failing; nothing was acknowledged.
    #[error("storage is temporarily unavailable; nothing was recorded, retry the request")]
    StorageUnavailable,
    /// A provider tap delivery that failed verification (nothing stored).
    #[error("{message}")]
    WebhookRejected {
        /// Why, for the sender.
        message: String,
    },
    /// 500: a bug; details are logged, not returned.
    #[error("internal error; it was logged")]
    Internal(String),
}

impl ApiError {
    /// A 422 naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationError::new(param, message))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::BadRequest { .. }
            | ApiError::WebhookRejected { .. } => StatusCode::BAD_REQUEST,
            ApiError::MissingApiKey | ApiError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::IdempotencyInFlight => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge | ApiError::ProviderPayloadTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "invalid_json",
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::WebhookRejected { .. } => "webhook_rejected",
            ApiError::MissingApiKey => "missing_api_key",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { kind, .. } => kind,
            ApiError::IdempotencyInFlight => "idempotency_key_in_flight",
            ApiError::PayloadTooLarge | ApiError::ProviderPayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_error",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::StorageUnavailable => "storage_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::Validation(v) => Some(&v.param),
            ApiError::BadRequest { param, .. } => param.as_deref(),
            ApiError::IdempotencyKeyReused | ApiError::IdempotencyInFlight => {
                Some("Idempotency-Key")
            }
            _ => None,
        }
    }

    /// The message for people (validation errors name their field).
    pub fn message(&self) -> String {
        match self {
            ApiError::Validation(v) => format!("{}: {}", v.param, v.message),
            other => other.to_string(),
        }
    }
}

/// The JSON error body: `{"error": {"type", "message", "param"?}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable type, e.g. `validation_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What is wrong and what to do, for a person.
    pub message: String,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                ApiError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
                other => tracing::warn!(error = %other, "request failed"),
            }
        }
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind().to_owned(),
                message: self.message(),
                param: self.param().map(str::to_owned),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited {
            retry_after_seconds,
        } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The API's words for a [`ServiceError`]: the one place where the service
/// layer's errors become HTTP statuses and messages.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::Invalid(invalid) => ApiError::Validation(invalid),
            ServiceError::UrlRefused(refused) => ApiError::Validation(
                sendpromptly_core::validation::ValidationError::new(
                    refused.param,
                    refused.reason.to_string(),
                ),
            ),
            ServiceError::Conflict { kind, message } => ApiError::Conflict { kind, message },
            ServiceError::RepairUrlMissing => ApiError::Conflict {
                kind: "repair_url_missing",
                message:
                    "the project has no repair_url; set one with PATCH /v1/project before reprocessing"
                        .into(),
            },
            ServiceError::KeyRevoked => ApiError::InvalidApiKey,
            // The API calls no console-user operation; were it to, a refusal
            // is a conflict with the caller's rights.
            ServiceError::Forbidden(message) => ApiError::Conflict {
                kind: "forbidden",
                message,
            },
            ServiceError::Unavailable => ApiError::StorageUnavailable,
            ServiceError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(err: TransitionError) -> Self {
        ServiceError::from(err).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ServiceError::from(err).into()
    }
}
