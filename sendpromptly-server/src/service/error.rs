//! [`ServiceError`]: why a shared operation did not happen, in the domain's
//! terms (no HTTP status, no front end's wording). The front ends map it.

use sendpromptly_core::machine::TransitionError;
use sendpromptly_core::validation::ValidationError;

use crate::outbound::RefusedSetting;
use crate::store::StoreError;

/// Why an operation of the service layer did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such object (or it belongs to another project).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A field breaks the contract's rules.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A repair or alert URL the outbound policy refuses, naming the
    /// setting (the same words as at send time; the CLI adds how to give it
    /// the server's policy).
    #[error(transparent)]
    UrlRefused(#[from] RefusedSetting),
    /// The request conflicts with the object's state.
    #[error("{message}")]
    Conflict {
        /// A machine-readable type, e.g. `reprocess_in_flight`.
        kind: &'static str,
        /// What to do about it, for a person (no front end's wording).
        message: String,
    },
    /// A reprocess needs a repair URL and the project has none; each front
    /// end says where to set one.
    #[error("the project has no repair_url; set one before reprocessing")]
    RepairUrlMissing,
    /// The API key is revoked or not this project's.
    #[error("invalid API key: it is unknown or was revoked")]
    KeyRevoked,
    /// The acting console user may not do this (their role, or the target
    /// is beyond their projects); the message says what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// Storage is unreachable or failing (logged where it was converted).
    #[error("storage is temporarily unavailable; nothing was recorded, retry the request")]
    Unavailable,
    /// A bug; the detail is for the log, not for people.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for service results.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// An [`ServiceError::Invalid`] naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid(ValidationError::new(param, message))
    }
}

impl From<TransitionError> for ServiceError {
    fn from(err: TransitionError) -> Self {
        match err {
            TransitionError::UnknownEvent => ServiceError::NotFound("event"),
            TransitionError::NoIncident => ServiceError::Conflict {
                kind: "no_incident",
                message: "this event has no incident".into(),
            },
            TransitionError::IncidentResolved => ServiceError::Conflict {
                kind: "incident_resolved",
                message: "the incident is already resolved".into(),
            },
            TransitionError::CallbackInFlight { reprocess_id } => ServiceError::Conflict {
                kind: "reprocess_in_flight",
                message: format!(
                    "repair callback {reprocess_id} is still being delivered; wait until it is delivered or gives up"
                ),
            },
            TransitionError::WrongEvent => {
                ServiceError::Internal("state machine got a command for another event".into())
            }
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Transition(t) => t.into(),
            StoreError::Conflict(message) => ServiceError::Conflict {
                kind: "conflict",
                message,
            },
            StoreError::NotFound("cursor") => {
                ServiceError::invalid("cursor", "is not a cursor returned by this API")
            }
            StoreError::NotFound(what) => ServiceError::NotFound(what),
            StoreError::KeyRevoked => ServiceError::KeyRevoked,
            StoreError::Database(db) => {
                tracing::error!(error = %db, "database error");
                ServiceError::Unavailable
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<crate::provision::UserError> for ServiceError {
    fn from(err: crate::provision::UserError) -> Self {
        use crate::provision::UserError;
        match err {
            UserError::InvalidEmail(_) => ServiceError::invalid("email", err.to_string()),
            UserError::WeakPassword => ServiceError::invalid("password", err.to_string()),
            UserError::Hash(detail) => ServiceError::Internal(detail),
            UserError::Store(store) => store.into(),
        }
    }
}
