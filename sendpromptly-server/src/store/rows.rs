//! Row decoding, once for both backends.
//!
//! [`RowExt`] reads a column as one of the few kinds the schema uses
//! (integers, text, bytes, reals, booleans; times are integer unix
//! milliseconds); one generic implementation covers every sqlx row type
//! that can decode them, so `SqliteRow` and `PgRow` share the decoders
//! below.

use std::collections::BTreeMap;
use std::str::FromStr;

use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::{Actor, JsonObject, TimelineEntry, TimelineKind};
use sendpromptly_core::wire::{ReprocessBatchCounts, ReprocessBatchItem};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::Project;
use super::codec::{decode_record, to_u32, to_u64, ts};
use super::group::{LoadedEvent, StoredKey, stored_status};
use super::{
    ApiKey, DailyActivity, IncidentCounts, ProofLink, ReprocessBatch, StoreError, StoreResult, User,
};
use sendpromptly_core::batch::batch_item_state;

/// A row's columns by name, as the kinds the schema uses.
pub(super) trait RowExt {
    /// An integer column.
    fn int(&self, column: &str) -> StoreResult<i64>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    /// A text column.
    fn text(&self, column: &str) -> StoreResult<String>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    /// A binary column.
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>>;
    /// A nullable binary column.
    fn opt_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A floating-point column.
    fn real(&self, column: &str) -> StoreResult<f64>;
    /// A boolean column.
    fn boolean(&self, column: &str) -> StoreResult<bool>;
}

impl<R> RowExt for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, column: &str) -> StoreResult<i64> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
    fn real(&self, column: &str) -> StoreResult<f64> {
        Ok(self.try_get(column)?)
    }
    fn boolean(&self, column: &str) -> StoreResult<bool> {
        Ok(self.try_get(column)?)
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A project (the columns `sql::PROJECT_BY_ID` reads).
pub(super) fn project(row: &impl RowExt) -> StoreResult<Project> {
    Ok(Project {
        id: row.text("id")?,
        name: row.text("name")?,
        repair_url: row.opt_text("repair_url")?,
        default_deadline_seconds: to_u32(
            row.int("default_deadline_seconds")?,
            "default_deadline_seconds",
        )?,
        deadlines_by_event_type: json::<BTreeMap<String, u32>>(
            &row.text("deadlines_by_event_type")?,
            "deadlines_by_event_type",
        )?,
        alert_channels: json(&row.text("alert_channels")?, "alert_channels")?,
        proof_show_metadata: row.boolean("proof_show_metadata")?,
        created_at: ts(row.int("created_at")?),
        trace_url_template: row.opt_text("trace_url_template")?,
    })
}

/// An API key.
pub(super) fn api_key(row: &impl RowExt) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: row.text("id")?,
        project_id: row.text("project_id")?,
        key_hash: row.bytes("key_hash")?,
        prefix: row.text("prefix")?,
        name: row.opt_text("name")?,
        created_at: ts(row.int("created_at")?),
        revoked_at: row.opt_int("revoked_at")?.map(ts),
        scopes: scope_set(row.int("scopes")?),
        last_used_at: row.opt_int("last_used_at")?.map(ts),
        last_used_class: row
            .opt_text("last_used_class")?
            .and_then(|class| class.parse().ok()),
        used_classes: scope_set(row.int("used_classes")?),
    })
}

fn scope_set(bits: i64) -> sendpromptly_core::scope::ScopeSet {
    sendpromptly_core::scope::ScopeSet::from_bits(u8::try_from(bits & 0xff).unwrap_or(0))
}

/// An audit log entry.
pub(super) fn audit_entry(row: &impl RowExt) -> StoreResult<crate::store::AuditEntry> {
    let state = |column: &str| -> StoreResult<Option<serde_json::Value>> {
        row.opt_text(column)?
            .map(|text| json(&text, "audit state"))
            .transpose()
    };
    Ok(crate::store::AuditEntry {
        id: row.text("id")?,
        project_id: row.text("project_id")?,
        at: ts(row.int("at")?),
        actor: row.text("actor")?,
        ip: row.opt_text("ip")?,
        action: row.text("action")?,
        target: row.text("target")?,
        before: state("before_json")?,
        after: state("after_json")?,
    })
}

/// A console user.
pub(super) fn user(row: &impl RowExt) -> StoreResult<User> {
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        created_at: ts(row.int("created_at")?),
        disabled_at: row.opt_int("disabled_at")?.map(ts),
        owner: row.boolean("owner")?,
        totp_enabled: row.boolean("totp_enabled")?,
    })
}

/// A proof link.
pub(super) fn proof_link(row: &impl RowExt) -> StoreResult<ProofLink> {
    Ok(ProofLink {
        id: row.text("id")?,
        project_id: row.text("project_id")?,
        incident_id: row.text("incident_id")?,
        token_hash: row.bytes("token_hash")?,
        created_by: row.text("created_by")?,
        created_at: ts(row.int("created_at")?),
        expires_at: ts(row.int("expires_at")?),
        revoked_at: row.opt_int("revoked_at")?.map(ts),
    })
}

/// A timeline entry.
pub(super) fn timeline_entry(row: &impl RowExt) -> StoreResult<TimelineEntry> {
    Ok(TimelineEntry {
        at: ts(row.int("at")?),
        kind: TimelineKind::from_str(&row.text("kind")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        actor: Actor::from_str(&row.text("actor")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        detail: json::<JsonObject>(&row.text("detail")?, "timeline detail")?,
        hash: row.opt_text("hash")?,
    })
}

/// An event's record (`record` column).
pub(super) fn record(row: &impl RowExt) -> StoreResult<EventRecord> {
    decode_record(&row.text("record")?)
}

/// An event row read for a write (`pk`, `project_id`, `record`,
/// `chain_head`).
pub(super) fn loaded_event(row: &impl RowExt) -> StoreResult<LoadedEvent> {
    Ok(LoadedEvent {
        pk: row.int("pk")?,
        project_id: row.text("project_id")?,
        record: record(row)?,
        chain_head: row.opt_text("chain_head")?,
    })
}

/// A stored idempotency key.
pub(super) fn stored_key(row: &impl RowExt) -> StoreResult<StoredKey> {
    Ok(StoredKey {
        project_id: row.text("project_id")?,
        key: row.text("key")?,
        request_hash: row.bytes("request_hash")?,
        status: stored_status(row.opt_int("status")?)?,
        response: row.opt_bytes("response")?,
        locked_until: row.opt_int("locked_until")?,
        created_at: row.int("created_at")?,
    })
}

/// The per-state incident counts of `state`, `n` rows.
pub(super) fn incident_counts<R: RowExt>(rows: &[R]) -> StoreResult<IncidentCounts> {
    let mut counts = IncidentCounts::default();
    for row in rows {
        let n = to_u64(row.int("n")?);
        match row.text("state")?.as_str() {
            "open" => counts.open = n,
            "reprocessing" => counts.reprocessing = n,
            "resolved" => counts.resolved = n,
            other => return Err(StoreError::Corrupt(format!("incident state `{other}`"))),
        }
    }
    Ok(counts)
}

/// One row of the overview chart.
pub(super) fn daily_activity(row: &impl RowExt) -> StoreResult<DailyActivity> {
    Ok(DailyActivity {
        day: super::codec::day_of(row.int("day")?)?,
        event_type: row.opt_text("event_type")?,
        events: to_u64(row.int("events")?),
        failures: to_u64(row.int("failures")?),
        incidents: to_u64(row.int("incidents")?),
    })
}

/// A batch from its row and the row of its counts.
pub(super) fn batch(row: &impl RowExt, counts: &impl RowExt) -> StoreResult<ReprocessBatch> {
    let count = |column: &str| counts.int(column).map(to_u64);
    Ok(ReprocessBatch {
        id: row.text("id")?,
        project_id: row.text("project_id")?,
        state: row.text("state")?,
        rate_per_second: row.real("rate_per_second")?,
        concurrency: to_u32(row.int("concurrency")?, "concurrency")?,
        started_by: row.text("started_by")?,
        note: row.opt_text("note")?,
        selection: json(&row.text("selection")?, "batch selection")?,
        created_at: ts(row.int("created_at")?),
        finished_at: row.opt_int("finished_at")?.map(ts),
        counts: ReprocessBatchCounts {
            total: count("total")?,
            pending: count("pending")?,
            skipped: count("skipped")?,
            cancelled: count("cancelled")?,
            sent: count("sent")?,
            in_flight: count("in_flight")?,
            delivered: count("delivered")?,
            failed: count("failed")?,
            resolved: count("resolved")?,
        },
    })
}

/// A batch item with its shown state ([`batch_item_state`]).
pub(super) fn batch_item(row: &impl RowExt) -> StoreResult<ReprocessBatchItem> {
    let state = row.text("state")?;
    let delivery = row.opt_text("delivery_state")?;
    let incident = row.opt_text("incident_state")?;
    Ok(ReprocessBatchItem {
        incident_id: row.text("incident_id")?,
        event_type: row.opt_text("event_type")?,
        subject: row.opt_text("subject")?,
        state: batch_item_state(&state, delivery.as_deref(), incident.as_deref()).to_owned(),
        reason: row.opt_text("reason")?,
        reprocess_id: row.opt_text("reprocess_id")?,
    })
}

pub(super) fn reconcile_state(row: &impl RowExt) -> StoreResult<super::ReconcileState> {
    let pass = match (row.opt_int("pass_lower")?, row.opt_int("pass_upper")?) {
        (Some(lower), Some(upper)) => Some(super::ReconcilePass {
            lower,
            upper,
            cursor: row.opt_text("pass_cursor")?,
            newest: row.opt_int("pass_newest")?,
        }),
        _ => None,
    };
    Ok(super::ReconcileState {
        project_id: row.text("project_id")?,
        watermark: row.opt_int("watermark")?,
        pass,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until: row.opt_int("lease_until")?.map(ts),
        last_run_at: row.opt_int("last_run_at")?.map(ts),
        last_success_at: row.opt_int("last_success_at")?.map(ts),
        last_error_kind: row.opt_text("last_error_kind")?,
        last_error: row.opt_text("last_error")?,
        events_fed: to_u64(row.int("events_fed")?),
    })
}
