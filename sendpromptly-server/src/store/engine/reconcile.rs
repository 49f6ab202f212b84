//! The Stripe reconciler's state: its lease, its progress and its outcome
//! (see [`crate::reconcile`]). Every write is one statement guarded by the
//! lease, so two instances on one database never both run a project's pass
//! and a pass whose lease ran out cannot save over its successor's.

use std::time::Duration;

use sendpromptly_core::Timestamp;

use super::super::codec::{duration_millis, ms};
use super::super::rows::{self};
use super::super::sql::{self, args};
use super::super::{ReconcileOutcome, ReconcilePass, ReconcileState, StoreResult};
use super::{Backend, Engine};

pub(super) async fn state<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
) -> StoreResult<Option<ReconcileState>> {
    engine
        .read_optional(sql::RECONCILE_STATE, args![project_id])
        .await?
        .as_ref()
        .map(rows::reconcile_state)
        .transpose()
}

pub(super) async fn states<B: Backend>(engine: &Engine<B>) -> StoreResult<Vec<ReconcileState>> {
    let rows = engine.read_all(sql::RECONCILE_STATES, &[]).await?;
    rows.iter().map(rows::reconcile_state).collect()
}

pub(super) async fn take_lease<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    owner: &str,
    now: Timestamp,
    lease: Duration,
) -> StoreResult<Option<ReconcileState>> {
    let until = ms(now).saturating_add(duration_millis(lease));
    let taken = engine
        .backend
        .write_one(
            sql::TAKE_RECONCILE_LEASE,
            args![project_id, owner, until, ms(now)],
        )
        .await
        .map_err(|e| super::super::codec::insert_error(e, "reconcile state", "project"))?;
    if taken == 0 {
        return Ok(None);
    }
    state(engine, project_id).await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn save_progress<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    owner: &str,
    pass: &ReconcilePass,
    fed: u64,
    now: Timestamp,
    lease: Duration,
) -> StoreResult<bool> {
    let until = ms(now).saturating_add(duration_millis(lease));
    let fed = i64::try_from(fed).unwrap_or(i64::MAX);
    let saved = engine
        .backend
        .write_one(
            sql::SAVE_RECONCILE_PROGRESS,
            args![
                pass.lower,
                pass.upper,
                pass.cursor.as_deref(),
                pass.newest,
                fed,
                until,
                project_id,
                owner,
                ms(now)
            ],
        )
        .await?;
    Ok(saved == 1)
}

pub(super) async fn finish<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    owner: &str,
    now: Timestamp,
    outcome: &ReconcileOutcome,
) -> StoreResult<bool> {
    let (succeeded, watermark, kind, message) = match outcome {
        ReconcileOutcome::Succeeded { watermark } => (1_i64, *watermark, None, None),
        ReconcileOutcome::Failed { kind, message } => {
            (0, None, Some(kind.as_str()), Some(message.as_str()))
        }
    };
    let finished = engine
        .backend
        .write_one(
            sql::FINISH_RECONCILE,
            args![
                ms(now),
                succeeded,
                watermark,
                kind,
                message,
                project_id,
                owner
            ],
        )
        .await?;
    Ok(finished == 1)
}
