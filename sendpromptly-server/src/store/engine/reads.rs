//! The reads: an event or incident with its timeline, the event search and
//! the incident list (built from their filters), and a batch with its
//! counts.

use sendpromptly_core::machine::EventRecord;

use super::super::codec::{
    clamp_limit, contains_pattern, events_cursor, incidents_cursor, ms, parse_events_cursor,
    parse_incidents_cursor,
};
use super::super::rows::{self, RowExt};
use super::super::sql::Queries;
use super::super::sql::{self, Arg, Builder, args};
use super::super::{
    ChainPage, ChainRow, ChainScope, EventChain, EventFilter, IncidentFilter, Page, PageRequest,
    ReprocessBatch, StoreResult, StoredEvent,
};
use super::{Backend, Conn, Engine, fetch_one, page};

/// The event `load` (a statement returning `pk`, `project_id`, `record`)
/// finds, with its timeline, both from one snapshot.
pub(super) async fn stored_event<B: Backend>(
    engine: &Engine<B>,
    load: &'static str,
    params: &[Arg<'_>],
) -> StoreResult<Option<StoredEvent>> {
    let mut tx = engine.backend.snapshot().await?;
    let Some(row) = B::Db::fetch_optional(&mut tx, load, params).await? else {
        return Ok(None);
    };
    let loaded = rows::loaded_event(&row)?;
    let entries = B::Db::fetch_all(&mut tx, sql::TIMELINE, args![loaded.pk]).await?;
    let timeline = entries
        .iter()
        .map(rows::timeline_entry)
        .collect::<StoreResult<_>>()?;
    tx.commit().await?;
    Ok(Some(StoredEvent {
        record: loaded.record,
        timeline,
    }))
}

/// Appends the live/test-mode condition on the event of row id `pk_column`:
/// test mode is a provider copy with `livemode` false.
fn push_livemode(query: &mut Builder<'_>, pk_column: &str, livemode: Option<bool>) {
    let Some(live) = livemode else {
        return;
    };
    query.push(if live {
        " AND NOT EXISTS"
    } else {
        " AND EXISTS"
    });
    query.push(" (SELECT 1 FROM provider_copies c WHERE c.event_pk = ");
    query.push(pk_column).push(" AND c.livemode = ").bind(false);
    query.push(")");
}

/// Appends ` AND (a LIKE p OR b LIKE p …)` for a free-text search.
fn push_search<'a, B: Backend>(query: &mut Builder<'a>, columns: &[&str], pattern: &'a str) {
    for (i, column) in columns.iter().enumerate() {
        query.push(if i == 0 { " AND (" } else { " OR " });
        query.push(column).push(" ").push(B::SQL.like).push(" ");
        query.bind(pattern).push(B::SQL.like_escape);
    }
    query.push(")");
}

pub(super) async fn search_events<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    filter: &EventFilter,
    page_request: &PageRequest,
) -> StoreResult<Page<EventRecord>> {
    let limit = clamp_limit(page_request.limit);
    let after = page_request
        .cursor
        .as_deref()
        .map(parse_events_cursor)
        .transpose()?;
    let pattern = filter.search.as_deref().map(contains_pattern);
    let mut query = Builder::new("SELECT pk, record FROM events WHERE project_id = ");
    query.bind(project_id);
    if let Some(subject) = &filter.subject {
        query.push(" AND subject = ").bind(subject);
    }
    if let Some(state) = filter.state {
        query.push(" AND state = ").bind(state.as_str());
    }
    if let Some(event_id) = &filter.event_id {
        // At most one row per provider, found through the unique key
        // (project, provider, event id): no index of its own (migration 0014).
        query
            .push(" AND pk IN (SELECT pk FROM events WHERE project_id = ")
            .bind(project_id)
            .push(" AND provider IN (");
        for (i, provider) in sendpromptly_core::model::Provider::ALL.iter().enumerate() {
            query
                .push(if i == 0 { "" } else { ", " })
                .bind(provider.as_str());
        }
        query.push(") AND event_id = ").bind(event_id).push(")");
    }
    push_livemode(&mut query, "events.pk", filter.livemode);
    if let Some(pattern) = &pattern {
        push_search::<B>(&mut query, &["event_id", "subject"], pattern);
    }
    if let Some(pk) = after {
        query.push(" AND pk < ").bind(pk);
    }
    query
        .push(" ORDER BY pk DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = engine.read_all(&query.sql, &query.args).await?;
    page(
        &rows,
        limit,
        |row| Ok((rows::record(row)?, row.int("pk")?)),
        events_cursor,
    )
}

pub(super) async fn list_incidents<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    filter: &IncidentFilter,
    page_request: &PageRequest,
) -> StoreResult<Page<EventRecord>> {
    let limit = clamp_limit(page_request.limit);
    let after = page_request
        .cursor
        .as_deref()
        .map(parse_incidents_cursor)
        .transpose()?;
    let pattern = filter.search.as_deref().map(contains_pattern);
    let query = incidents_query::<B>(
        project_id,
        filter,
        pattern.as_deref(),
        after.as_ref(),
        limit,
    );
    let rows = engine.read_all(&query.sql, &query.args).await?;
    page(
        &rows,
        limit,
        |row| Ok((rows::record(row)?, (row.int("opened_at")?, row.text("id")?))),
        |(at, id)| incidents_cursor(at, &id),
    )
}

/// The incident list's statement: `filter`, after the keyset position
/// `after`, `limit + 1` rows (`id`, `opened_at`, `pk`, `record`).
fn incidents_query<'a, B: Backend>(
    project_id: &'a str,
    filter: &'a IncidentFilter,
    pattern: Option<&'a str>,
    after: Option<&'a (i64, String)>,
    limit: u32,
) -> Builder<'a> {
    let mut query = Builder::new(
        "SELECT i.id, i.opened_at, e.pk, e.record FROM incidents i \
         JOIN events e ON e.pk = i.event_pk WHERE i.project_id = ",
    );
    query.bind(project_id);
    if let Some(state) = filter.state {
        query.push(" AND i.state = ").bind(state.as_str());
    }
    if let Some(kind) = filter.kind {
        query.push(" AND i.kind = ").bind(kind.as_str());
    }
    if let Some(provider) = filter.provider {
        query.push(" AND i.provider = ").bind(provider.as_str());
    }
    if let Some(event_type) = &filter.event_type {
        query.push(" AND i.event_type = ").bind(event_type.as_str());
    }
    if let Some(subject) = &filter.subject {
        query.push(" AND i.subject = ").bind(subject.as_str());
    }
    push_livemode(&mut query, "i.event_pk", filter.livemode);
    if let Some(pattern) = pattern {
        push_search::<B>(&mut query, &["i.id", "i.event_id", "i.subject"], pattern);
    }
    if let Some(at) = filter.opened_after {
        query.push(" AND i.opened_at >= ").bind(ms(at));
    }
    if let Some(at) = filter.opened_before {
        query.push(" AND i.opened_at < ").bind(ms(at));
    }
    if let Some((at, id)) = after {
        if B::SQL.row_values {
            query.push(" AND (i.opened_at, i.id) < (").bind(*at);
            query.push(", ").bind(id.as_str()).push(")");
        } else {
            query.push(" AND (i.opened_at < ").bind(*at);
            query.push(" OR (i.opened_at = ").bind(*at);
            query.push(" AND i.id < ").bind(id.as_str()).push("))");
        }
    }
    query
        .push(" ORDER BY i.opened_at DESC, i.id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    query
}

/// Largest page of [`export_incidents`].
const EXPORT_PAGE_MAX: u32 = 1000;

/// A page of the incident list with each incident's timeline: the list's
/// query, then the page's timelines in one statement, from one snapshot.
pub(super) async fn export_incidents<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    filter: &IncidentFilter,
    cursor: Option<&str>,
    limit: u32,
) -> StoreResult<Page<StoredEvent>> {
    let limit = limit.clamp(1, EXPORT_PAGE_MAX);
    let after = cursor.map(parse_incidents_cursor).transpose()?;
    let pattern = filter.search.as_deref().map(contains_pattern);
    let query = incidents_query::<B>(
        project_id,
        filter,
        pattern.as_deref(),
        after.as_ref(),
        limit,
    );
    let mut tx = engine.backend.snapshot().await?;
    let rows = B::Db::fetch_all(&mut tx, &query.sql, &query.args).await?;
    let more = rows.len() > limit as usize;
    let mut data = Vec::with_capacity(rows.len().min(limit as usize));
    let mut pks = Vec::with_capacity(data.capacity());
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        data.push(StoredEvent {
            record: rows::record(row)?,
            timeline: Vec::new(),
        });
        pks.push(row.int("pk")?);
        last = Some((row.int("opened_at")?, row.text("id")?));
    }
    if !pks.is_empty() {
        let mut timeline = Builder::new(
            "SELECT event_pk, at, kind, actor, detail, hash FROM timeline WHERE event_pk IN (",
        );
        for (i, pk) in pks.iter().enumerate() {
            if i > 0 {
                timeline.push(", ");
            }
            timeline.bind(*pk);
        }
        timeline.push(") ORDER BY event_pk, seq");
        let entries = B::Db::fetch_all(&mut tx, &timeline.sql, &timeline.args).await?;
        let at: std::collections::HashMap<i64, usize> =
            pks.iter().enumerate().map(|(i, pk)| (*pk, i)).collect();
        for entry in &entries {
            if let Some(i) = at.get(&entry.int("event_pk")?) {
                data[*i].timeline.push(rows::timeline_entry(entry)?);
            }
        }
    }
    tx.commit().await?;
    Ok(Page {
        data,
        next_cursor: if more {
            last.map(|(at, id)| incidents_cursor(at, &id))
        } else {
            None
        },
    })
}

/// A page of events with their timeline rows as stored (see
/// [`ChainPage`]), from one snapshot.
pub(super) async fn timeline_chains<B: Backend>(
    engine: &Engine<B>,
    scope: ChainScope<'_>,
    after_pk: i64,
    limit: u32,
) -> StoreResult<ChainPage> {
    let limit = limit.clamp(1, EXPORT_PAGE_MAX);
    let mut events = Builder::new(
        "SELECT e.pk, e.project_id, e.provider, e.event_id, e.chain_head, \
         (SELECT i.id FROM incidents i WHERE i.event_pk = e.pk) AS incident_id \
         FROM events e WHERE e.pk > ",
    );
    events.bind(after_pk);
    match scope {
        ChainScope::All => {}
        ChainScope::Project(project_id) => {
            events.push(" AND e.project_id = ").bind(project_id);
        }
        ChainScope::Incident {
            project_id,
            incident_id,
        } => {
            events.push(" AND e.pk IN (SELECT i.event_pk FROM incidents i WHERE i.id = ");
            events.bind(incident_id).push(" AND i.project_id = ");
            events.bind(project_id).push(")");
        }
    }
    events.push(" ORDER BY e.pk LIMIT ").bind(i64::from(limit));
    let mut tx = engine.backend.snapshot().await?;
    let start = B::Db::fetch_optional(&mut tx, sql::UNCHAINED_THROUGH, args![]).await?;
    let unchained_through = match start {
        Some(row) => row.int("unchained_through")?,
        None => 0,
    };
    let rows = B::Db::fetch_all(&mut tx, &events.sql, &events.args).await?;
    let mut chains = Vec::with_capacity(rows.len());
    for row in &rows {
        chains.push(EventChain {
            pk: row.int("pk")?,
            project_id: row.text("project_id")?,
            provider: row.text("provider")?,
            event_id: row.text("event_id")?,
            incident_id: row.opt_text("incident_id")?,
            chain_head: row.opt_text("chain_head")?,
            entries: Vec::new(),
        });
    }
    if let (Some(first), Some(last)) = (chains.first(), chains.last()) {
        let (first, last) = (first.pk, last.pk);
        let entries =
            B::Db::fetch_all(&mut tx, sql::TIMELINE_CHAIN_ROWS, args![first, last]).await?;
        let at: std::collections::HashMap<i64, usize> =
            chains.iter().enumerate().map(|(i, c)| (c.pk, i)).collect();
        for entry in &entries {
            if let Some(i) = at.get(&entry.int("event_pk")?) {
                chains[*i].entries.push(ChainRow {
                    seq: entry.int("seq")?,
                    at_millis: entry.int("at")?,
                    kind: entry.text("kind")?,
                    actor: entry.text("actor")?,
                    detail: entry.text("detail")?,
                    hash: entry.opt_text("hash")?,
                });
            }
        }
    }
    tx.commit().await?;
    Ok(ChainPage {
        unchained_through,
        events: chains,
    })
}

/// A batch with its counts, derived from its items, their outbox rows and
/// their incidents.
pub(super) async fn load_batch<B: Backend>(
    conn: &mut Conn<B>,
    project_id: &str,
    batch_id: &str,
) -> StoreResult<Option<ReprocessBatch>> {
    let Some(row) = B::Db::fetch_optional(conn, sql::BATCH, args![batch_id, project_id]).await?
    else {
        return Ok(None);
    };
    let counts = fetch_one::<B>(conn, sql::BATCH_COUNTS, args![project_id, batch_id]).await?;
    rows::batch(&row, &counts).map(Some)
}
