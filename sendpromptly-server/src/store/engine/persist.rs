//! Load → [`machine::apply`] → persist: how a command reaches the database,
//! for both backends.
//!
//! Every write of an event goes through [`persist`] (one transition) or,
//! from a group, the backend's set-based [`Backend::write_events`] followed
//! by [`write_outbox`]: the event row, its timeline entries, the
//! `incidents` copy of `record.incident`, and the outbox rows (callbacks,
//! alerts) its effects ask for, in the caller's transaction. The caller
//! holds the event's row lock (PostgreSQL) or the write lock (SQLite).

use sendpromptly_core::Timestamp;
use sendpromptly_core::alert_plan;
use sendpromptly_core::chain;
use sendpromptly_core::machine::{self, Effect, EventRecord, Transition};
use sendpromptly_core::model::{EventKey, Incident, TimelineEntry};

use super::super::codec::{encode_json, encode_record, insert_error, ms};
use super::super::group::{self, EventWrite, GroupJob, GroupTarget, LoadedEvent};
use super::super::rows::{self, RowExt};
use super::super::sql::Queries;
use super::super::sql::{self, args};
use super::super::{Applied, StoreError, StoreResult};
use super::{Backend, Conn};

/// An event by key, locked where the backend locks rows.
pub(super) async fn load_by_key<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    key: &EventKey,
) -> StoreResult<Option<LoadedEvent>> {
    let params = args![project_id, key.provider.as_str(), &key.event_id];
    let row = B::Db::fetch_optional(conn, B::SQL.load_by_key_locked, params).await?;
    row.as_ref().map(rows::loaded_event).transpose()
}

/// The event of an incident, locked where the backend locks rows.
pub(in crate::store) async fn load_by_incident<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    incident_id: &str,
) -> StoreResult<Option<LoadedEvent>> {
    let params = args![incident_id, project_id];
    let row = B::Db::fetch_optional(conn, B::SQL.load_by_incident_locked, params).await?;
    row.as_ref().map(rows::loaded_event).transpose()
}

/// Which of `keys` (`(project id, key id)`) are that project's unrevoked
/// API keys, held so that no revocation commits before this transaction
/// (SQLite: the write lock; PostgreSQL: a share lock on the rows).
pub(in crate::store) async fn valid_api_keys<B: Backend>(
    conn: &mut Conn<B>,
    keys: &[(&str, &str)],
) -> StoreResult<Vec<(String, String)>> {
    let keys = encode_json(&keys, "API keys")?;
    let rows = B::Db::fetch_all(conn, B::SQL.valid_api_keys, args![&keys]).await?;
    rows.iter()
        .map(|row| Ok((row.text("project_id")?, row.text("id")?)))
        .collect()
}

/// The command of one grouped job inside the current transaction: its API
/// key checked, its event loaded (and locked), the transition written.
pub(in crate::store) async fn apply_job<B: Backend>(
    conn: &mut Conn<B>,
    job: GroupJob,
) -> StoreResult<Applied> {
    let GroupJob {
        project_id,
        api_key,
        target,
        command,
        ctx,
        idempotency: _,
    } = job;
    if let Some(key_id) = &api_key
        && valid_api_keys::<B>(conn, &[(&project_id, key_id)])
            .await?
            .is_empty()
    {
        return Err(StoreError::KeyRevoked);
    }
    let loaded = match &target {
        GroupTarget::Event(key) => {
            let mut loaded = load_by_key::<B>(conn, &project_id, key).await?;
            if loaded.is_none() && B::lock_new_event(conn, &project_id, key).await? {
                loaded = load_by_key::<B>(conn, &project_id, key).await?;
            }
            loaded
        }
        GroupTarget::Incident(incident_id) => Some(
            load_by_incident::<B>(conn, &project_id, incident_id)
                .await?
                .ok_or(StoreError::NotFound("incident"))?,
        ),
    };
    let before = loaded.as_ref().map(|l| l.record.clone());
    let transition = machine::apply(before, command, &ctx)?;
    if let (None, GroupTarget::Event(key)) = (&loaded, &target) {
        group::ensure_created_as_asked(&transition, key)?;
    }
    persist::<B>(conn, &project_id, loaded.as_ref(), &transition, ctx.now).await?;
    Ok(Applied { transition })
}

/// Writes what one [`Transition`] changed; returns the event's row id.
pub(super) async fn persist<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    before: Option<&LoadedEvent>,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<i64> {
    let write = EventWrite::one(project_id, before, transition, now);
    let writes = std::slice::from_ref(&write);
    let pks = B::write_events(conn, writes).await?;
    write_outbox::<B>(conn, writes, &pks).await?;
    pks.first()
        .copied()
        .ok_or_else(|| StoreError::Corrupt("no row id for a written event".to_owned()))
}

/// After the event rows of `writes` are written (their row ids `pks`): per
/// changed event, the incident copy and the outbox rows its effects ask for.
pub(in crate::store) async fn write_outbox<B: Backend>(
    conn: &mut Conn<B>,
    writes: &[EventWrite<'_>],
    pks: &[i64],
) -> StoreResult<()> {
    for (write, pk) in writes.iter().zip(pks) {
        if !write.changed() {
            continue;
        }
        if let Some(incident) = &write.after.incident {
            upsert_incident::<B>(conn, write.project_id, *pk, write.after, incident).await?;
        }
        for (transition, now) in &write.transitions {
            write_effects::<B>(conn, write.project_id, *pk, transition, *now).await?;
        }
    }
    Ok(())
}

/// Writes the `incidents` copy of `record.incident`.
async fn upsert_incident<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    pk: i64,
    record: &EventRecord,
    incident: &Incident,
) -> StoreResult<()> {
    let row = args![
        &incident.id,
        project_id,
        pk,
        incident.kind.as_str(),
        incident.state.as_str(),
        record.provider.as_str(),
        &record.event_id,
        &record.event_type,
        &record.subject,
        ms(incident.opened_at),
        ms(record.updated_at)
    ];
    B::Db::execute(conn, sql::UPSERT_INCIDENT, row)
        .await
        .map_err(|e| insert_error(e, "this incident id is already used", "event"))?;
    Ok(())
}

/// Writes the outbox rows of one transition's effects: callbacks to
/// deliver or cancel, and alerts.
async fn write_effects<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    pk: i64,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<()> {
    for effect in &transition.effects {
        match effect {
            Effect::DeliverCallback {
                reprocess_id,
                incident_id,
            } => {
                let row = args![reprocess_id, project_id, pk, incident_id, ms(now)];
                B::Db::execute(conn, sql::INSERT_DELIVERY, row)
                    .await
                    .map_err(|e| insert_error(e, "this reprocess id is already used", "event"))?;
            }
            Effect::CancelCallback { reprocess_id } => {
                let row = args![ms(now), reprocess_id, pk];
                B::Db::execute(conn, sql::CANCEL_DELIVERY, row).await?;
            }
            Effect::IncidentOpened { .. }
            | Effect::IncidentReopened { .. }
            | Effect::IncidentReturnedToOpen { .. }
            | Effect::IncidentResolved { .. }
            | Effect::CallbackGaveUp { .. }
            | Effect::ReprocessNoResult { .. } => {}
        }
    }
    insert_alerts::<B>(conn, project_id, transition, now).await
}

/// Enqueues the alerts the effects raise for the project's channels
/// ([`alert_plan::plan_alerts`]), in the caller's transaction.
async fn insert_alerts<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<()> {
    if alert_plan::alert_events(&transition.effects).is_empty() {
        return Ok(());
    }
    let row = B::Db::fetch_optional(conn, sql::PROJECT_ALERT_CHANNELS, args![project_id]).await?;
    let Some(row) = row else {
        return Ok(());
    };
    let channels: serde_json::Value = serde_json::from_str(&row.text("alert_channels")?)
        .map_err(|e| StoreError::Corrupt(format!("alert_channels: {e}")))?;
    // An unreadable setting raises no alert (logged) rather than failing
    // the state change.
    let channels = match sendpromptly_core::alert::parse_channels(&channels) {
        Ok(channels) => channels,
        Err(err) => {
            tracing::warn!(project_id, error = %err, "unreadable alert_channels; no alert raised");
            return Ok(());
        }
    };
    for alert in alert_plan::plan_alerts(project_id, &channels, transition, now) {
        let row = args![
            &alert.id,
            project_id,
            alert.channel_index,
            &alert.channel_json,
            alert.event.as_str(),
            &alert.group_key,
            alert.role,
            &alert.incidents_json,
            ms(now)
        ];
        B::Db::execute(conn, sql::INSERT_ALERT, row).await?;
    }
    Ok(())
}

/// Appends `entry` to an incident's timeline (locking its event), keeping
/// the record's `updated_at` the time of its latest entry, in the caller's
/// transaction.
pub(super) async fn append_entry<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    incident_id: &str,
    entry: &TimelineEntry,
) -> StoreResult<()> {
    let mut loaded = load_by_incident::<B>(conn, project_id, incident_id)
        .await?
        .ok_or(StoreError::NotFound("incident"))?;
    let detail = encode_json(&entry.detail, "timeline detail")?;
    let actor = entry.actor.to_string();
    let prev = match &loaded.chain_head {
        Some(head) => chain::from_hex(head)
            .ok_or_else(|| StoreError::Corrupt(format!("chain head {head:?} is not hex")))?,
        None => chain::genesis(
            project_id,
            loaded.record.provider.as_str(),
            &loaded.record.event_id,
        ),
    };
    let hash = chain::to_hex(&chain::entry_hash(&prev, entry));
    let row = args![
        loaded.pk,
        ms(entry.at),
        entry.kind.as_str(),
        &actor,
        &detail,
        &hash
    ];
    B::Db::execute(conn, sql::INSERT_TIMELINE_ENTRY, row).await?;
    B::Db::execute(conn, sql::SET_CHAIN_HEAD, args![&hash, loaded.pk]).await?;
    if entry.at > loaded.record.updated_at {
        loaded.record.updated_at = entry.at;
        let record = encode_record(&loaded.record)?;
        let row = args![&record, ms(entry.at), loaded.pk];
        B::Db::execute(conn, sql::TOUCH_EVENT, row).await?;
    }
    Ok(())
}
