//! The work queues: the sweeper's due events, the dispatcher's callbacks,
//! the alert sender's alerts (grouped into digests as they are claimed),
//! batch pacing and retention.
//!
//! On PostgreSQL the claims skip rows another instance holds (`SKIP
//! LOCKED`, in the backend's [`Dialect`](super::super::sql::Dialect)); on
//! SQLite the write lock makes each pass exclusive. Nothing is held across
//! network I/O: a claimed row carries a lease, and finishing checks it.

use std::collections::HashSet;
use std::time::Duration;

use sendpromptly_core::Timestamp;
use sendpromptly_core::alert::GroupDecision;
use sendpromptly_core::machine::{self, AttemptReport, Command, Context};
use sendpromptly_core::model::{Actor, TimelineEntry};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::{alert_plan, batch};

use super::super::codec::{decode_record, ms, new_incident_id, to_u32, to_u64, ts};
use super::super::rows::{self, RowExt};
use super::super::sql::Queries;
use super::super::sql::{self, args};
use super::super::{
    AlertJob, Applied, DeliveryJob, PaceReport, StoreError, StoreResult, SweepReport,
};
use super::persist::{append_entry, load_by_incident, persist};
use super::{Backend, Conn, Engine, fetch_one};

pub(super) async fn sweep_due<B: Backend>(
    engine: &Engine<B>,
    now: Timestamp,
    limit: u32,
) -> StoreResult<SweepReport> {
    let mut tx = engine.backend.write().await?;
    let params = args![ms(now), i64::from(limit)];
    let rows = B::Db::fetch_all(&mut tx, B::SQL.sweep_select, params).await?;
    let mut report = SweepReport {
        examined: rows.len(),
        ..SweepReport::default()
    };
    for row in &rows {
        let due_at = ts(row.int("due_at")?);
        report.oldest_due_at = Some(report.oldest_due_at.map_or(due_at, |t| t.min(due_at)));
        let loaded = match rows::loaded_event(row) {
            Ok(loaded) => loaded,
            Err(StoreError::Corrupt(why)) => {
                // One unreadable record must not stall every sweep: take
                // it off the queue (the stored text is kept as it is).
                let pk = row.int("pk")?;
                tracing::error!(event_pk = pk, %why, "unreadable event record; removed from the sweep queue");
                B::Db::execute(&mut tx, sql::SET_DUE_AT, args![None::<i64>, pk]).await?;
                continue;
            }
            Err(other) => return Err(other),
        };
        let ctx = Context {
            now,
            actor: Actor::System("sweeper".to_owned()),
            new_incident_id: new_incident_id(now),
        };
        let transition = machine::apply(Some(loaded.record.clone()), Command::Tick, &ctx)?;
        let due_again = transition.record.next_due_at();
        persist::<B>(&mut tx, &loaded.project_id, Some(&loaded), &transition, now).await?;
        if transition.entries.is_empty() && transition.record == loaded.record {
            // Nothing happened although the row was due: its due time
            // is stale. Rewrite it from the record so it is not
            // examined again and again.
            if due_again.is_some_and(|due| due <= now) {
                tracing::warn!(event_pk = loaded.pk, "due record unchanged by a tick");
            }
            let due = due_again.filter(|due| *due > now).map(ms);
            B::Db::execute(&mut tx, sql::SET_DUE_AT, args![due, loaded.pk]).await?;
            continue;
        }
        report.transitions.push((loaded.project_id, transition));
    }
    tx.commit().await?;
    Ok(report)
}

pub(super) async fn claim_deliveries<B: Backend>(
    engine: &Engine<B>,
    now: Timestamp,
    lease: Duration,
    limit: u32,
) -> StoreResult<Vec<DeliveryJob>> {
    let lease_until = now + lease;
    let mut tx = engine.backend.write().await?;
    let params = args![ms(now), ms(now), i64::from(limit)];
    let rows = B::Db::fetch_all(&mut tx, B::SQL.claim_select, params).await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        let reprocess_id = row.text("reprocess_id")?;
        let attempts = to_u32(row.int("attempts")?, "attempts")?;
        if attempts > 0 && !batch_retry_has_slot::<B>(&mut tx, &reprocess_id, now).await? {
            let later = args![ms(now + BATCH_RETRY_DEFER), &reprocess_id];
            B::Db::execute(&mut tx, sql::DEFER_DELIVERY, later).await?;
            continue;
        }
        let lease_row = args![ms(lease_until), ms(now), &reprocess_id];
        B::Db::execute(&mut tx, sql::LEASE_DELIVERY, lease_row).await?;
        // Read without a lock: the claim never waits on an event row
        // (writers lock the event first, then its outbox row).
        let event_pk = row.int("event_pk")?;
        let context = fetch_one::<B>(&mut tx, sql::DELIVERY_CONTEXT, args![event_pk]).await?;
        jobs.push(DeliveryJob {
            reprocess_id,
            project_id: row.text("project_id")?,
            incident_id: row.text("incident_id")?,
            attempt: attempts.saturating_add(1),
            record: decode_record(&context.text("record")?)?,
            repair_url: context.opt_text("repair_url")?,
            lease_until,
        });
    }
    tx.commit().await?;
    Ok(jobs)
}

/// How long a batch's due retry waits when its batch has no free slot.
const BATCH_RETRY_DEFER: Duration = Duration::from_secs(1);

/// Whether the retry `reprocess_id` may be attempted now: always, unless it
/// belongs to a running batch whose concurrency its other callbacks fill
/// (a retry coming due on its own schedule is not counted by the pacer
/// when it starts new items, so it waits here for a slot).
async fn batch_retry_has_slot<B: Backend>(
    tx: &mut Conn<B>,
    reprocess_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let params = args![reprocess_id];
    let Some(running) = B::Db::fetch_optional(tx, sql::RUNNING_BATCH_OF_DELIVERY, params).await?
    else {
        return Ok(true);
    };
    let batch_id = running.text("id")?;
    let concurrency = to_u64(running.int("concurrency")?);
    let busy = fetch_one::<B>(tx, sql::BATCH_BUSY, args![ms(now), &batch_id]).await?;
    Ok(batch::retry_has_slot(to_u64(busy.int("n")?), concurrency))
}

/// The `(state, next_attempt_at)` an outbox row takes after an attempt.
fn outcome_columns(next: NextStep) -> (&'static str, Option<i64>) {
    match next {
        NextStep::Done => ("delivered", None),
        NextStep::GiveUp(_) => ("gave_up", None),
        NextStep::RetryAt(at) => ("pending", Some(ms(at))),
    }
}

pub(super) async fn finish_delivery_attempt<B: Backend>(
    engine: &Engine<B>,
    job: &DeliveryJob,
    report: AttemptReport,
    next: NextStep,
    now: Timestamp,
) -> StoreResult<Applied> {
    let mut tx = engine.backend.write().await?;
    // Lock order: the event row, then the outbox row.
    let ids = args![&job.reprocess_id, &job.project_id];
    let row = B::Db::fetch_optional(&mut tx, B::SQL.finish_delivery_load, ids)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
    let loaded = rows::loaded_event(&row)?;
    let delivery = match B::SQL.delivery_lock {
        Some(lock) => fetch_one::<B>(&mut tx, lock, args![&job.reprocess_id]).await?,
        None => row,
    };
    let holds_lease = delivery.text("delivery_state")? == "pending"
        && delivery.opt_int("lease_until")? == Some(ms(job.lease_until));
    // While this job holds the row's lease its attempt is new by
    // construction (finishing clears the lease). If an earlier claim
    // whose lease ran out already recorded an attempt with the same
    // number, number this one after it, so the state machine records it
    // instead of dropping it as a repeat and leaving the row and the
    // incident disagreeing.
    let recorded_attempts = loaded
        .record
        .incident
        .as_ref()
        .and_then(|i| i.reprocess.as_ref())
        .filter(|r| r.id == job.reprocess_id)
        .map_or(0, |r| r.attempts);
    let attempt = if holds_lease {
        job.attempt.max(recorded_attempts.saturating_add(1))
    } else {
        job.attempt
    };
    let ctx = Context {
        now,
        actor: Actor::System("dispatcher".to_owned()),
        new_incident_id: new_incident_id(now),
    };
    let command = Command::CallbackAttempt {
        reprocess_id: job.reprocess_id.clone(),
        attempt,
        report,
        next,
    };
    let transition = machine::apply(Some(loaded.record.clone()), command, &ctx)?;
    // Cancellations among the effects are carried out here (the row
    // becomes `cancelled` and the update below leaves it alone).
    persist::<B>(&mut tx, &loaded.project_id, Some(&loaded), &transition, now).await?;
    let (state, next_attempt_at) = outcome_columns(next);
    let finish = args![
        state,
        i64::from(attempt),
        next_attempt_at,
        ms(now),
        &job.reprocess_id,
        ms(job.lease_until)
    ];
    if B::Db::execute(&mut tx, sql::FINISH_DELIVERY, finish).await? == 0 {
        tracing::debug!(
            reprocess_id = %job.reprocess_id,
            "delivery row no longer pending under this lease; left as it is"
        );
    }
    tx.commit().await?;
    Ok(Applied { transition })
}

/// Candidates read per alert a claim may take (see [`claim_alerts`]).
const CANDIDATES_PER_JOB: i64 = 8;

pub(super) async fn claim_alerts<B: Backend>(
    engine: &Engine<B>,
    now: Timestamp,
    lease: Duration,
    limit: u32,
    window_seconds: i64,
) -> StoreResult<Vec<AlertJob>> {
    let lease_until = now + lease;
    let mut tx = engine.backend.write().await?;
    // More candidates than jobs: instances claiming at once read the same
    // head of the queue, skip what another holds, and go on to the rest.
    let candidates = i64::from(limit).saturating_mul(CANDIDATES_PER_JOB);
    let params = args![ms(now), ms(now), candidates];
    let candidates = B::Db::fetch_all(&mut tx, B::SQL.claim_alerts_select, params).await?;
    let mut grouped: HashSet<String> = HashSet::new();
    let mut our_groups: HashSet<String> = HashSet::new();
    let mut busy_groups: HashSet<String> = HashSet::new();
    let mut jobs = Vec::with_capacity(candidates.len());
    for candidate in &candidates {
        if jobs.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            break;
        }
        let id = candidate.text("id")?;
        if grouped.contains(&id) {
            continue;
        }
        let group_key = candidate.text("group_key")?;
        // A row that may group (`new`, `held`) is decided only under its
        // group's lock: another instance deciding the same group now would
        // otherwise send a second single or a second digest.
        if matches!(candidate.text("role")?.as_str(), "new" | "held")
            && !our_groups.contains(&group_key)
        {
            if busy_groups.contains(&group_key)
                || !lock_alert_group::<B>(&mut tx, &group_key).await?
            {
                busy_groups.insert(group_key);
                continue;
            }
            our_groups.insert(group_key.clone());
        }
        // Read again, locked: another instance may have claimed or grouped
        // it since the candidates were read.
        let params = args![&id, ms(now), ms(now)];
        let Some(row) = B::Db::fetch_optional(&mut tx, B::SQL.claim_alert_lock, params).await?
        else {
            continue;
        };
        let created_at = row.int("created_at")?;
        let mut role = row.text("role")?;
        let mut incidents = row.text("incidents")?;
        let mut flush = row.int("next_attempt_at")?;
        if role == "new" {
            let params = args![&group_key, &id];
            let opened = fetch_one::<B>(&mut tx, sql::ALERT_WINDOW_OPENED, params)
                .await?
                .opt_int("opened")?;
            match alert_plan::alert_grouping(window_seconds, opened.map(ts), ts(created_at)) {
                GroupDecision::SendNow => role = "single".into(),
                GroupDecision::HoldUntil { flush_at } => {
                    let hold = args![ms(flush_at), ms(now), &id];
                    B::Db::execute(&mut tx, sql::HOLD_ALERT, hold).await?;
                    if flush_at > now {
                        continue;
                    }
                    flush = ms(flush_at);
                    role = "held".into();
                }
            }
        }
        if role == "held" {
            let params = args![&group_key, &id, ms(now), ms(now), flush];
            let members = B::Db::fetch_all(&mut tx, B::SQL.digest_members_select, params).await?;
            let mut parts = vec![incidents];
            for member in &members {
                let member_id = member.text("id")?;
                parts.push(member.text("incidents")?);
                let params = args![&id, ms(now), &member_id];
                B::Db::execute(&mut tx, sql::GROUP_ALERT, params).await?;
                grouped.insert(member_id);
            }
            incidents = alert_plan::merge_alert_incidents(&parts)
                .map_err(|e| StoreError::Corrupt(format!("alert incidents: {e}")))?;
            role = "digest".into();
        }
        let lease_row = args![&role, &incidents, ms(lease_until), ms(now), &id];
        B::Db::execute(&mut tx, sql::LEASE_ALERT, lease_row).await?;
        jobs.push(AlertJob::decode(
            id,
            row.text("project_id")?,
            &row.text("channel")?,
            &row.text("event")?,
            &incidents,
            to_u32(row.int("attempts")?, "attempts")?,
            ts(created_at),
            lease_until,
        )?);
    }
    tx.commit().await?;
    Ok(jobs)
}

/// Takes the transaction's lock on an alert group without waiting: `false`
/// if another instance holds it (always `true` where the write lock makes
/// the claim exclusive).
async fn lock_alert_group<B: Backend>(tx: &mut Conn<B>, group_key: &str) -> StoreResult<bool> {
    match B::SQL.alert_group_lock {
        Some(lock) => Ok(fetch_one::<B>(tx, lock, args![group_key])
            .await?
            .int("locked")?
            == 1),
        None => Ok(true),
    }
}

/// How often a finish is tried again when the database aborts it to break
/// a deadlock or a serialization conflict: the alert was sent, and a finish
/// that is not recorded sends it again after its lease.
const FINISH_TRIES: u32 = 5;

pub(super) async fn finish_alert_attempt<B: Backend>(
    engine: &Engine<B>,
    job: &AlertJob,
    entry: &TimelineEntry,
    next: NextStep,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut tries = 1;
    loop {
        match finish_alert_once(engine, job, entry, next, now).await {
            Err(err) if tries < FINISH_TRIES && is_transient(&err) => {
                tracing::debug!(error = %err, alert_id = %job.id, "alert finish aborted by the database; trying again");
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Whether the database aborted the transaction only because of another
/// one (deadlock, serialization failure), so running it again may succeed.
fn is_transient(err: &StoreError) -> bool {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// One try of [`finish_alert_attempt`]: the incidents' events locked in row
/// order and their timelines appended, then the alert row finished (the
/// lock order every writer follows: events, then the outbox row).
async fn finish_alert_once<B: Backend>(
    engine: &Engine<B>,
    job: &AlertJob,
    entry: &TimelineEntry,
    next: NextStep,
    now: Timestamp,
) -> StoreResult<bool> {
    let (state, next_attempt_at) = outcome_columns(next);
    let mut tx = engine.backend.write().await?;
    let mut incidents = Vec::with_capacity(job.incidents.len());
    for facts in &job.incidents {
        let params = args![&facts.incident_id, &job.project_id];
        let row = B::Db::fetch_optional(&mut tx, sql::INCIDENT_EVENT_PK, params).await?;
        if let Some(row) = row {
            incidents.push((row.int("event_pk")?, facts.incident_id.as_str()));
        }
    }
    incidents.sort_unstable();
    incidents.dedup();
    for (_, incident_id) in &incidents {
        match append_entry::<B>(&mut tx, &job.project_id, incident_id, entry).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    let finish = args![
        state,
        i64::from(job.attempt),
        next_attempt_at,
        ms(now),
        &job.id,
        ms(job.lease_until)
    ];
    if B::Db::execute(&mut tx, sql::FINISH_ALERT, finish).await? == 0 {
        // No longer held under this lease: nothing of this attempt is kept.
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn pace_reprocess_batches<B: Backend>(
    engine: &Engine<B>,
    now: Timestamp,
    limit_batches: u32,
) -> StoreResult<PaceReport> {
    let mut tx = engine.backend.write().await?;
    let params = args![ms(now), i64::from(limit_batches)];
    let batches = B::Db::fetch_all(&mut tx, B::SQL.pace_batches_select, params).await?;
    let mut report = PaceReport::default();
    for row in &batches {
        pace_batch::<B>(&mut tx, row, now, &mut report).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// One batch's share of a pacing pass (see [`super::super::Store::pace_reprocess_batches`]).
async fn pace_batch<B: Backend>(
    tx: &mut Conn<B>,
    batch: &B::Row,
    now: Timestamp,
    report: &mut PaceReport,
) -> StoreResult<()> {
    let batch_id = batch.text("id")?;
    let project_id = batch.text("project_id")?;
    let rate = batch.real("rate_per_second")?;
    let concurrency = to_u64(batch.int("concurrency")?);
    let started_by = batch.text("started_by")?;
    let note = batch.opt_text("note")?;
    let next_send_at = ts(batch.int("next_send_at")?);
    // A callback waiting for its next retry (attempted, not due) holds
    // no slot; after the endpoint's latest success, those whose last
    // attempt came before it are sent again within the pacing
    // (`batch::pace_step`).
    let progress = fetch_one::<B>(tx, sql::BATCH_PROGRESS, args![ms(now), &batch_id]).await?;
    let pending = to_u64(progress.int("pending")?);
    let in_flight = to_u64(progress.int("in_flight")?);
    let waiting = to_u64(progress.int("waiting")?);
    let last_success = progress.opt_int("last_success")?;
    let retryable = match last_success {
        Some(success) if waiting > 0 => {
            let params = args![&batch_id, ms(now), success];
            to_u64(
                fetch_one::<B>(tx, sql::BATCH_RETRYABLE, params)
                    .await?
                    .int("n")?,
            )
        }
        _ => 0,
    };
    let load = batch::BatchLoad {
        pending,
        in_flight,
        waiting,
        retryable,
    };
    let (retry_now, n, next) = match batch::pace_step(now, next_send_at, rate, concurrency, load) {
        batch::PaceStep::Complete => {
            B::Db::execute(tx, sql::COMPLETE_BATCH, args![ms(now), &batch_id]).await?;
            report.completed += 1;
            return Ok(());
        }
        batch::PaceStep::Wait => return Ok(()),
        batch::PaceStep::Go {
            retry,
            start,
            next_send_at,
        } => (retry, start, next_send_at),
    };
    if let Some(success) = last_success.filter(|_| retry_now > 0) {
        let limit = i64::try_from(retry_now).unwrap_or(i64::MAX);
        let params = args![ms(now), &batch_id, success, limit];
        let retried = B::Db::execute(tx, sql::RETRY_BATCH_DELIVERIES, params).await?;
        report.retried += usize::try_from(retried).unwrap_or(0);
    }
    if n > 0 {
        let project =
            rows::project(&fetch_one::<B>(tx, sql::PROJECT_BY_ID, args![&project_id]).await?)?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let items = B::Db::fetch_all(tx, sql::PENDING_BATCH_ITEMS, args![&batch_id, limit]).await?;
        for item in &items {
            let position = item.int("position")?;
            let incident_id = item.text("incident_id")?;
            let outcome = if project.repair_url.is_none() {
                Err("no_repair_url")
            } else {
                match load_by_incident::<B>(tx, &project_id, &incident_id).await? {
                    None => Err("incident_not_found"),
                    Some(loaded) => {
                        let event_type = loaded.record.event_type.as_deref();
                        let (command, ctx) = batch::batch_reprocess_command(
                            &batch_id,
                            &started_by,
                            note.as_deref(),
                            project.deadline_for(event_type.unwrap_or_default(), None),
                            now,
                        );
                        let reprocess_id = match &command {
                            Command::RequestReprocess { reprocess_id, .. } => reprocess_id.clone(),
                            _ => String::new(),
                        };
                        match machine::apply(Some(loaded.record.clone()), command, &ctx) {
                            Err(err) => Err(batch::skip_reason(&err)),
                            Ok(transition) => {
                                persist::<B>(tx, &project_id, Some(&loaded), &transition, now)
                                    .await?;
                                report.transitions.push((project_id.clone(), transition));
                                Ok(reprocess_id)
                            }
                        }
                    }
                }
            };
            let (state, reason, reprocess_id) = match outcome {
                Ok(id) => ("sent", None, Some(id)),
                Err(reason) => {
                    report.skipped += 1;
                    ("skipped", Some(reason), None)
                }
            };
            let params = args![
                state,
                reason,
                reprocess_id.as_deref(),
                ms(now),
                &batch_id,
                position
            ];
            B::Db::execute(tx, sql::SEND_BATCH_ITEM, params).await?;
        }
    }
    B::Db::execute(tx, sql::BATCH_NEXT_SEND_AT, args![ms(next), &batch_id]).await?;
    Ok(())
}

pub(super) async fn purge_resolved_history<B: Backend>(
    engine: &Engine<B>,
    before: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let mut tx = engine.backend.write().await?;
    // Finished alerts (sent, given up, or carried by a digest) hold copies
    // of their incidents' facts: they go after the same retention.
    let params = args![ms(before), i64::from(limit)];
    B::Db::execute(&mut tx, sql::PURGE_ALERTS, params).await?;
    // PostgreSQL: row locks, an event being changed right now is skipped
    // (and its conditions are checked again on the locked row).
    let rows = B::Db::fetch_all(&mut tx, B::SQL.purge_select, params).await?;
    let pks = rows
        .iter()
        .map(|row| row.int("pk"))
        .collect::<StoreResult<Vec<i64>>>()?;
    if !pks.is_empty() {
        B::delete_events(&mut tx, &pks).await?;
    }
    tx.commit().await?;
    Ok(pks.len() as u64)
}
