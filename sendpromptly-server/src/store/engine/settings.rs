//! Projects, API keys, signing secrets, sessions, proof links and
//! idempotency keys: the writes that need more than one statement.

use std::collections::BTreeMap;
use std::time::Duration;

use sendpromptly_core::Timestamp;

use super::super::codec::{self, duration_millis, encode_json, insert_error, ms};
use super::super::group::IDEMPOTENCY_TTL_MILLIS;
use super::super::rows::{self, RowExt};
use super::super::sql::Queries;
use super::super::sql::{self, args};
use super::super::{
    IdempotencyBegin, NewProject, Project, ProjectPatch, ProofLink, ResealReport, Session,
    StoreError, StoreResult,
};
use super::{Backend, Engine};
use crate::secrets::Keyring;

/// How often `idempotency_begin` reads a key again after losing the race
/// to insert it (another PostgreSQL instance; never on SQLite, whose write
/// lock is held from the read on).
const RACE_RETRIES: usize = 5;

pub(super) async fn create_project<B: Backend>(
    engine: &Engine<B>,
    project: NewProject,
) -> StoreResult<Project> {
    let name_taken =
        || StoreError::Conflict(format!("a project named `{}` already exists", project.name));
    let mut tx = engine.backend.write().await?;
    if B::Db::fetch_optional(&mut tx, sql::PROJECT_NAME_TAKEN, args![&project.name])
        .await?
        .is_some()
    {
        return Err(name_taken());
    }
    let created_at = ms(project.created_at);
    let row = args![
        &project.id,
        &project.name,
        &project.repair_url,
        i64::from(project.default_deadline_seconds),
        created_at,
        created_at
    ];
    B::Db::execute(&mut tx, sql::INSERT_PROJECT, row)
        .await
        .map_err(|e| {
            // Another instance created the same name since our check.
            let name_clash = matches!(&e, sqlx::Error::Database(db)
                if db.is_unique_violation() && db.constraint() == Some("projects_name_key"));
            if name_clash {
                name_taken()
            } else {
                insert_error(e, "a project with this id already exists", "project")
            }
        })?;
    tx.commit().await?;
    Ok(Project {
        id: project.id,
        name: project.name,
        repair_url: project.repair_url,
        default_deadline_seconds: project.default_deadline_seconds,
        deadlines_by_event_type: BTreeMap::new(),
        alert_channels: serde_json::Value::Array(Vec::new()),
        proof_show_metadata: false,
        created_at: project.created_at,
        trace_url_template: None,
    })
}

pub(super) async fn update_project<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    patch: ProjectPatch,
) -> StoreResult<Project> {
    let mut tx = engine.backend.write().await?;
    let row = B::Db::fetch_optional(&mut tx, B::SQL.project_for_update, args![project_id]).await?;
    let mut project = row
        .as_ref()
        .map(rows::project)
        .transpose()?
        .ok_or(StoreError::NotFound("project"))?;
    patch.apply_to(&mut project);
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let deadlines = encode_json(&project.deadlines_by_event_type, "deadlines_by_event_type")?;
    let channels = encode_json(&project.alert_channels, "alert_channels")?;
    let row = args![
        &project.repair_url,
        i64::from(project.default_deadline_seconds),
        &deadlines,
        &channels,
        project.proof_show_metadata,
        ms(now),
        project_id,
        &project.trace_url_template
    ];
    B::Db::execute(&mut tx, sql::UPDATE_PROJECT, row).await?;
    super::audit::write_pending::<B>(&mut tx).await?;
    tx.commit().await?;
    Ok(project)
}

pub(super) async fn revoke_api_key<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    key_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut tx = engine.backend.write().await?;
    let key = args![project_id, key_id];
    let Some(row) = B::Db::fetch_optional(&mut tx, B::SQL.api_key_for_update, key).await? else {
        return Ok(false);
    };
    if row.opt_int("revoked_at")?.is_none() {
        let params = args![ms(now), project_id, key_id];
        B::Db::execute(&mut tx, sql::REVOKE_API_KEY, params).await?;
        super::audit::write_pending::<B>(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn reseal_signing_secrets<B: Backend>(
    engine: &Engine<B>,
    keyring: &Keyring,
) -> StoreResult<ResealReport> {
    let mut tx = engine.backend.write().await?;
    // Row locks (PostgreSQL): instances starting together reseal one after the other.
    let rows = B::Db::fetch_all(&mut tx, B::SQL.signing_secrets_for_update, &[]).await?;
    let mut report = ResealReport::default();
    for row in &rows {
        let project_id = row.text("project_id")?;
        let Some((sealed, was_plain)) =
            codec::reseal_signing_secret(keyring, &project_id, &row.text("secret")?)?
        else {
            continue;
        };
        let params = args![&sealed, row.int("id")?];
        B::Db::execute(&mut tx, sql::RESEAL_SIGNING_SECRET, params).await?;
        if was_plain {
            report.sealed_plaintext += 1;
        } else {
            report.resealed += 1;
        }
    }
    tx.commit().await?;
    Ok(report)
}

pub(super) async fn create_session<B: Backend>(
    engine: &Engine<B>,
    session: Session,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    let expired = args![ms(session.created_at)];
    B::Db::execute(&mut tx, sql::DELETE_EXPIRED_SESSIONS, expired).await?;
    let row = args![
        &session.token_hash,
        &session.user_id,
        ms(session.created_at),
        ms(session.expires_at),
        session.pending_2fa
    ];
    B::Db::execute(&mut tx, sql::INSERT_SESSION, row)
        .await
        .map_err(|e| insert_error(e, "this session token is already used", "user"))?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn create_proof_link<B: Backend>(
    engine: &Engine<B>,
    link: ProofLink,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    let incident = args![&link.incident_id, &link.project_id];
    if B::Db::fetch_optional(&mut tx, sql::INCIDENT_EXISTS, incident)
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound("incident"));
    }
    let revoked_at = link.revoked_at.map(ms);
    let row = args![
        &link.id,
        &link.project_id,
        &link.incident_id,
        &link.token_hash,
        &link.created_by,
        ms(link.created_at),
        ms(link.expires_at),
        revoked_at
    ];
    B::Db::execute(&mut tx, sql::INSERT_PROOF_LINK, row)
        .await
        .map_err(|e| {
            insert_error(
                e,
                "a proof link with this id or token already exists",
                "incident",
            )
        })?;
    super::audit::write_pending::<B>(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn idempotency_begin<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    key: &str,
    request_hash: &[u8],
    now: Timestamp,
    lock_for: Duration,
) -> StoreResult<IdempotencyBegin> {
    let locked_until = ms(now).saturating_add(duration_millis(lock_for));
    for _ in 0..RACE_RETRIES {
        if let Some(outcome) =
            begin_once(engine, project_id, key, request_hash, now, locked_until).await?
        {
            return Ok(outcome);
        }
        tracing::debug!("idempotency key inserted concurrently; reading it again");
    }
    // Another request keeps winning the insert: it is running.
    Ok(IdempotencyBegin::InFlight)
}

/// One try of `idempotency_begin`; `None` when another instance inserted
/// the key between our read and our insert.
async fn begin_once<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    key: &str,
    request_hash: &[u8],
    now: Timestamp,
    locked_until: i64,
) -> StoreResult<Option<IdempotencyBegin>> {
    let mut tx = engine.backend.write().await?;
    let id = args![project_id, key];
    let Some(row) = B::Db::fetch_optional(&mut tx, B::SQL.idempotency_for_update, id).await? else {
        let claim = args![project_id, key, request_hash, locked_until, ms(now)];
        let inserted = B::Db::execute(&mut tx, sql::CLAIM_IDEMPOTENCY_KEY, claim)
            .await
            .map_err(|e| insert_error(e, "idempotency key conflict", "project"))?;
        if inserted == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        return Ok(Some(IdempotencyBegin::Proceed));
    };
    let expired = row.int("created_at")? <= ms(now).saturating_sub(IDEMPOTENCY_TTL_MILLIS);
    if !expired {
        if row.bytes("request_hash")? != request_hash {
            return Ok(Some(IdempotencyBegin::Mismatch));
        }
        if let Some(status) = row.opt_int("status")? {
            let status = u16::try_from(status).map_err(|_| {
                StoreError::Corrupt(format!("idempotency status out of range: {status}"))
            })?;
            let body = row.opt_bytes("response")?.unwrap_or_default();
            let body = codec::open_response(engine.keyring()?, project_id, key, body)?;
            return Ok(Some(IdempotencyBegin::Replay { status, body }));
        }
        if row
            .opt_int("locked_until")?
            .is_some_and(|until| until > ms(now))
        {
            return Ok(Some(IdempotencyBegin::InFlight));
        }
        // The first request stopped without completing (a crash): this one
        // takes the key over, under the row lock.
    }
    let retake = args![request_hash, locked_until, ms(now), project_id, key];
    B::Db::execute(&mut tx, sql::RETAKE_IDEMPOTENCY_KEY, retake).await?;
    tx.commit().await?;
    Ok(Some(IdempotencyBegin::Proceed))
}
