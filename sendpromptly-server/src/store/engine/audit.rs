//! The audit log's storage: the entry a service operation hands to the
//! store for the write it is about to make ([`with_audit`]), written in
//! that write's own transaction ([`write_pending`]), and the log's reads
//! and retention.

use std::cell::RefCell;
use std::future::Future;

use sendpromptly_core::Timestamp;

use super::super::codec::{self, encode_json, ms};
use super::super::rows::{self, RowExt};
use super::super::sql::{self, Queries, args};
use super::super::{AuditEntry, AuditFilter, KeyUse, Page, PageRequest, StoreResult};
use super::{Backend, Conn, Engine};

tokio::task_local! {
    static PENDING: RefCell<Option<AuditEntry>>;
}

/// Runs `write` (one audited store write) with `entry` pending: the store
/// method that makes the change inserts the entry in its own transaction,
/// so the change and its audit row commit (or roll back) together. Returns
/// the write's output and the entry if no store write took it (the write
/// changed nothing, or is not one that records audit entries).
pub async fn with_audit<F: Future>(entry: AuditEntry, write: F) -> (F::Output, Option<AuditEntry>) {
    PENDING
        .scope(RefCell::new(Some(entry)), async move {
            let output = write.await;
            let left = PENDING.with(|pending| pending.borrow_mut().take());
            (output, left)
        })
        .await
}

/// Inserts the pending audit entry (if any) on `conn`, inside the write's
/// transaction; called just before each audited write commits.
pub(super) async fn write_pending<B: Backend>(conn: &mut Conn<B>) -> StoreResult<()> {
    let Some(entry) = PENDING
        .try_with(|pending| pending.borrow_mut().take())
        .ok()
        .flatten()
    else {
        return Ok(());
    };
    insert::<B>(conn, &entry).await
}

async fn insert<B: Backend>(conn: &mut Conn<B>, entry: &AuditEntry) -> StoreResult<()> {
    let before = entry
        .before
        .as_ref()
        .map(|v| encode_json(v, "audit before"))
        .transpose()?;
    let after = entry
        .after
        .as_ref()
        .map(|v| encode_json(v, "audit after"))
        .transpose()?;
    let row = args![
        &entry.id,
        &entry.project_id,
        ms(entry.at),
        &entry.actor,
        &entry.ip,
        &entry.action,
        &entry.target,
        &before,
        &after
    ];
    B::Db::execute(conn, sql::INSERT_AUDIT, row).await?;
    Ok(())
}

pub(super) async fn insert_audit<B: Backend>(
    engine: &Engine<B>,
    entry: &AuditEntry,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    insert::<B>(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn audit_page<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    filter: &AuditFilter,
    page: PageRequest,
) -> StoreResult<Page<AuditEntry>> {
    let limit = codec::clamp_limit(page.limit);
    let after_seq = page
        .cursor
        .as_deref()
        .map(|cursor| {
            codec::decode_cursor(cursor, "a:")?
                .parse::<i64>()
                .map_err(|_| super::super::StoreError::NotFound("cursor"))
        })
        .transpose()?;
    let params = args![
        project_id,
        after_seq,
        filter.action.as_deref(),
        filter.actor.as_deref(),
        filter.since.map(ms),
        filter.until.map(ms),
        i64::from(limit) + 1
    ];
    let found = engine.read_all(sql::AUDIT_PAGE, params).await?;
    let mut data = Vec::with_capacity(found.len());
    let mut last_seq = None;
    for row in found.iter().take(limit as usize) {
        data.push(rows::audit_entry(row)?);
        last_seq = Some(row.int("seq")?);
    }
    let next_cursor = (found.len() > limit as usize)
        .then(|| last_seq.map(|seq| codec::encode_cursor(&format!("a:{seq}"))))
        .flatten();
    Ok(Page { data, next_cursor })
}

pub(super) async fn purge_audit<B: Backend>(
    engine: &Engine<B>,
    before: Timestamp,
) -> StoreResult<u64> {
    // A read first: most passes find nothing, and take no write lock.
    if engine
        .read_optional(sql::AUDIT_OLDER_THAN, args![ms(before)])
        .await?
        .is_none()
    {
        return Ok(0);
    }
    Ok(engine
        .backend
        .write_one(sql::PURGE_AUDIT, args![ms(before)])
        .await?)
}

pub(super) async fn record_key_uses<B: Backend>(
    engine: &Engine<B>,
    uses: &[KeyUse],
) -> StoreResult<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let mut tx = engine.backend.write().await?;
    for key_use in uses {
        let params = args![
            ms(key_use.at),
            key_use.class.as_str(),
            i64::from(key_use.classes.bits()),
            &key_use.key_id
        ];
        B::Db::execute(&mut tx, sql::RECORD_KEY_USE, params).await?;
    }
    tx.commit().await?;
    Ok(())
}
