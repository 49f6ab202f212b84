//! [`CliError`]: a command-line failure as the operator reads it, with its
//! exit status; the one place where the errors of the store, the service
//! layer and the configuration become the CLI's words.

use crate::config;
use crate::provision;
use crate::secrets;
use crate::server;
use crate::service::ServiceError;
use crate::store::StoreError;

/// A command-line failure: a message for the operator, and the exit status.
#[derive(Debug)]
pub struct CliError {
    message: String,
    pub(super) status: u8,
}

impl CliError {
    /// A failure with this message (exit status 1).
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status: 1,
        }
    }

    /// The server stopped itself because it could no longer work (exit
    /// status 75, `EX_TEMPFAIL`: a supervisor should restart it).
    pub fn temporary_failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status: 75,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

macro_rules! cli_error_from {
    ($($ty:ty),+ $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(err: $ty) -> Self {
                CliError::new(err.to_string())
            }
        })+
    };
}

cli_error_from!(
    StoreError,
    config::ConfigError,
    server::StartError,
    provision::UserError,
    serde_json::Error,
    std::io::Error,
    secrets::SecretError,
);

/// The CLI's words for a reconciler failure (a refused key gets a hint).
impl From<crate::reconcile::ReconcileError> for CliError {
    fn from(err: crate::reconcile::ReconcileError) -> Self {
        use crate::reconcile::ReconcileError;
        use crate::reconcile::stripe_api::StripeApiError;
        match &err {
            ReconcileError::Stripe(StripeApiError::Unauthorized { .. }) => CliError::new(format!(
                "{err}; set a current restricted key with Events: Read in the project's settings"
            )),
            _ => CliError::new(err.to_string()),
        }
    }
}

impl From<crate::reconcile::stripe_api::StripeApiError> for CliError {
    fn from(err: crate::reconcile::stripe_api::StripeApiError) -> Self {
        crate::reconcile::ReconcileError::from(err).into()
    }
}

/// The CLI's words for a [`ServiceError`].
impl From<ServiceError> for CliError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::RepairUrlMissing => CliError::new(
                "the project has no repair_url; set one (the console's Settings, or PATCH /v1/project) before reprocessing",
            ),
            ServiceError::UrlRefused(refused) => {
                let hint = match refused.reason {
                    crate::outbound::OutboundError::Private(_) => {
                        "\nThis command checks URLs with the policy `sendpromptly serve` runs with: \
                         if serve runs with --allow-private-urls, pass --allow-private-urls here too \
                         (or set SENDPROMPTLY_ALLOW_PRIVATE_URLS=true, or allow_private_urls = true \
                         in the config file)"
                    }
                    _ => "",
                };
                CliError::new(format!("{refused}{hint}"))
            }
            ServiceError::Internal(detail) => CliError::new(format!("internal error: {detail}")),
            other => CliError::new(other.to_string()),
        }
    }
}
