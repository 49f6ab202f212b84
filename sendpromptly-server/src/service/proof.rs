//! Proof links: create, list and revoke (the read-only page itself is the
//! API's, `GET /proof/{token}`).

use sendpromptly_core::ids;
use sendpromptly_core::model::{Actor, TimelineEntry, TimelineKind};
use serde_json::json;

use super::audit::{self, Change, Who};
use super::incidents::load_incident;
use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::secrets;
use crate::store::ProofLink;
use crate::views::ProofLinkCreated;

/// Default lifetime of a proof link: 7 days.
pub const DEFAULT_PROOF_SECONDS: u32 = 7 * 24 * 3600;
/// Longest lifetime of a proof link: 90 days.
pub const MAX_PROOF_SECONDS: u32 = 90 * 24 * 3600;

/// Creates a proof link for an incident, as `actor`.
pub async fn create_link(
    state: &AppState,
    who: &Who,
    project_id: &str,
    incident_id: &str,
    actor: Actor,
    expires_in_seconds: Option<u32>,
) -> ServiceResult<ProofLinkCreated> {
    let seconds = expires_in_seconds.unwrap_or(DEFAULT_PROOF_SECONDS);
    if !(60..=MAX_PROOF_SECONDS).contains(&seconds) {
        return Err(ServiceError::invalid(
            "expires_in_seconds",
            format!("must be between 60 and {MAX_PROOF_SECONDS} (90 days)"),
        ));
    }
    load_incident(state, project_id, incident_id).await?;
    let now = state.now();
    let token = secrets::new_proof_token();
    let link = ProofLink {
        id: ids::new_id(ids::PROOF_LINK, now, &mut rand::thread_rng()),
        project_id: project_id.to_owned(),
        incident_id: incident_id.to_owned(),
        token_hash: secrets::hash_token(&token),
        created_by: actor.to_string(),
        created_at: now,
        expires_at: now.plus_seconds(i64::from(seconds)),
        revoked_at: None,
    };
    let change = Change {
        project_id: project_id.to_owned(),
        action: "proof_link.create",
        target: link.id.clone(),
        before: None,
        after: Some(json!({
            "incident_id": link.incident_id,
            "expires_at": link.expires_at,
        })),
    };
    let write = state.store().create_proof_link(link.clone());
    audit::record(state.store(), who, change, now, write).await?;
    let entry = TimelineEntry::new(
        now,
        TimelineKind::ProofLinkCreated,
        actor,
        json!({ "proof_link_id": link.id, "expires_at": link.expires_at }),
    );
    state
        .store()
        .append_incident_entry(project_id, incident_id, entry)
        .await?;
    // The chain head at creation rides in the link, so its holder's page
    // shows any later rewrite of the timeline (docs/tamper-evidence.md).
    let head = super::chain::incident_head(state.store(), project_id, incident_id).await?;
    let path = match head {
        Some(head) => format!("/proof/{token}?h={head}"),
        None => format!("/proof/{token}"),
    };
    Ok(ProofLinkCreated {
        id: link.id,
        url: state.public_url(&path),
        expires_at: link.expires_at,
    })
}

/// An incident's proof links (the incident must exist in the project).
pub async fn links_of(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
) -> ServiceResult<Vec<ProofLink>> {
    load_incident(state, project_id, incident_id).await?;
    Ok(state
        .store()
        .proof_links_for_incident(project_id, incident_id)
        .await?)
}

/// Revokes a proof link, as `actor`; `incident_id`, when given, must be
/// the link's incident (else [`ServiceError::NotFound`]).
pub async fn revoke_link(
    state: &AppState,
    who: &Who,
    project_id: &str,
    link_id: &str,
    incident_id: Option<&str>,
    actor: Actor,
) -> ServiceResult<()> {
    let link = state
        .store()
        .proof_link(project_id, link_id)
        .await?
        .filter(|l| incident_id.is_none_or(|id| l.incident_id == id))
        .ok_or(ServiceError::NotFound("proof link"))?;
    let now = state.now();
    let change = Change {
        project_id: project_id.to_owned(),
        action: "proof_link.revoke",
        target: link.id.clone(),
        before: Some(json!({ "incident_id": link.incident_id, "revoked_at": link.revoked_at })),
        after: Some(json!({ "incident_id": link.incident_id, "revoked_at": now })),
    };
    let write = state.store().revoke_proof_link(project_id, link_id, now);
    if link.revoked_at.is_none() && audit::record(state.store(), who, change, now, write).await? {
        let entry = TimelineEntry::new(
            now,
            TimelineKind::ProofLinkRevoked,
            actor,
            json!({ "proof_link_id": link.id }),
        );
        state
            .store()
            .append_incident_entry(project_id, &link.incident_id, entry)
            .await?;
    }
    Ok(())
}
