//! The API's JSON shapes: defined once in [`sendpromptly_core::wire`]
//! (shared with the SDKs); here, how they are built from stored rows.

pub use sendpromptly_core::wire::*;

use crate::store::{ApiKey, Project, ProofLink, SigningSecretRecord, StoredEvent};

impl From<&StoredEvent> for EventDetail {
    fn from(stored: &StoredEvent) -> Self {
        EventDetail::new(&stored.record, stored.timeline.clone())
    }
}

impl From<&ProofLink> for ProofLinkView {
    fn from(link: &ProofLink) -> Self {
        ProofLinkView {
            id: link.id.clone(),
            incident_id: link.incident_id.clone(),
            created_by: link.created_by.clone(),
            created_at: link.created_at,
            expires_at: link.expires_at,
            revoked_at: link.revoked_at,
        }
    }
}

impl From<&SigningSecretRecord> for SigningSecretView {
    fn from(secret: &SigningSecretRecord) -> Self {
        SigningSecretView {
            created_at: secret.created_at,
            expires_at: secret.expires_at,
        }
    }
}

impl From<&ApiKey> for ApiKeyView {
    fn from(key: &ApiKey) -> Self {
        ApiKeyView {
            id: key.id.clone(),
            prefix: key.prefix.clone(),
            name: key.name.clone(),
            created_at: key.created_at,
            revoked_at: key.revoked_at,
            scopes: Some(key.scopes),
        }
    }
}

/// The settings view of `project` with its active signing secrets.
pub fn project_view(project: &Project, secrets: &[SigningSecretRecord]) -> ProjectView {
    ProjectView {
        id: project.id.clone(),
        name: project.name.clone(),
        repair_url: project.repair_url.clone(),
        default_deadline_seconds: project.default_deadline_seconds,
        deadlines_by_event_type: project.deadlines_by_event_type.clone(),
        alert_channels: project.alert_channels.clone(),
        proof_show_metadata: project.proof_show_metadata,
        signing_secrets: secrets.iter().map(SigningSecretView::from).collect(),
        created_at: project.created_at,
        provider_tap: None,
        trace_url_template: project.trace_url_template.clone(),
        slos: Vec::new(),
    }
}
