//! Analytics (issue #25): the rollup rows the triggers of migration 0012
//! keep, the SLO objectives and their slot counts, and the burn episodes.

use sendpromptly_core::Timestamp;
use sendpromptly_core::alert::SloFacts;
use sendpromptly_core::alert_plan;
use sendpromptly_core::wire::SloObjective;

use super::super::codec::ms;
use super::super::rows::RowExt;
use super::super::sql::Queries;
use super::super::sql::{self, args};
use super::super::{StatsRow, StoreError, StoreResult};
use super::{Backend, Engine};

/// The objective as stored: parts per million.
fn ppm(objective_percent: f64) -> i64 {
    (objective_percent * 10_000.0).round() as i64
}

fn slo(row: &impl RowExt) -> StoreResult<SloObjective> {
    let int = |c: &str| -> StoreResult<u32> {
        u32::try_from(row.int(c)?).map_err(|_| StoreError::Corrupt(format!("slo {c}")))
    };
    Ok(SloObjective {
        event_type: row.text("event_type")?,
        objective_percent: row.int("objective_ppm")? as f64 / 10_000.0,
        threshold_seconds: int("threshold_seconds")?,
        window_days: int("window_days")?,
    })
}

pub(super) async fn stats_rows<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    from: Timestamp,
    to: Timestamp,
    event_type: Option<&str>,
) -> StoreResult<Vec<StatsRow>> {
    let only = event_type.unwrap_or("");
    let rows = engine
        .read_all(B::SQL.stats_rows, args![project_id, ms(from), ms(to), only])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StatsRow {
                metric: row.text("metric")?,
                day: row.int("day")?,
                event_type: row.text("event_type")?,
                bucket: row.int("bucket")?,
                n: u64::try_from(row.int("n")?).unwrap_or(0),
            })
        })
        .collect()
}

pub(super) async fn slo_objectives<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
) -> StoreResult<Vec<SloObjective>> {
    let rows = engine
        .read_all(sql::SLO_OBJECTIVES, args![project_id])
        .await?;
    rows.iter().map(slo).collect()
}

pub(super) async fn all_slo_objectives<B: Backend>(
    engine: &Engine<B>,
) -> StoreResult<Vec<(String, SloObjective)>> {
    let rows = engine.read_all(sql::ALL_SLO_OBJECTIVES, args![]).await?;
    rows.iter()
        .map(|row| Ok((row.text("project_id")?, slo(row)?)))
        .collect()
}

pub(super) async fn put_slo_objectives<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    objectives: &[SloObjective],
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    B::Db::execute(&mut tx, sql::DELETE_SLO_OBJECTIVES, args![project_id]).await?;
    for o in objectives {
        let row = args![
            project_id,
            o.event_type.as_str(),
            ppm(o.objective_percent),
            i64::from(o.threshold_seconds),
            i64::from(o.window_days)
        ];
        B::Db::execute(&mut tx, sql::INSERT_SLO_OBJECTIVE, row).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn slo_counts<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    event_type: &str,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<(u64, u64)> {
    let row = engine
        .read_one(
            B::SQL.slo_counts,
            args![project_id, event_type, ms(from), ms(to)],
        )
        .await?;
    let count = |c: &str| -> StoreResult<u64> {
        Ok(u64::try_from(row.opt_int(c)?.unwrap_or(0)).unwrap_or(0))
    };
    Ok((count("received")?, count("good")?))
}

pub(super) async fn start_slo_episode<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    facts: &SloFacts,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut tx = engine.backend.write().await?;
    let started = B::Db::execute(
        &mut tx,
        sql::SET_SLO_BURNING,
        args![project_id, facts.event_type.as_str(), 1_i64, ms(now)],
    )
    .await?;
    if started == 0 {
        return Ok(false);
    }
    let row =
        B::Db::fetch_optional(&mut tx, sql::PROJECT_ALERT_CHANNELS, args![project_id]).await?;
    let channels = match row {
        Some(row) => serde_json::from_str::<serde_json::Value>(&row.text("alert_channels")?)
            .ok()
            .and_then(|v| sendpromptly_core::alert::parse_channels(&v).ok())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for alert in alert_plan::plan_slo_alerts(project_id, &channels, facts, now) {
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
        B::Db::execute(&mut tx, sql::INSERT_ALERT, row).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn end_slo_episode<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    event_type: &str,
    now: Timestamp,
) -> StoreResult<()> {
    // Read first: most ticks find no episode, and a read takes no write lock.
    let on = engine
        .read_optional(sql::SLO_BURNING, args![project_id, event_type])
        .await?;
    if !matches!(on.map(|row| row.int("burning")).transpose()?, Some(1)) {
        return Ok(());
    }
    engine
        .backend
        .write_one(
            sql::SET_SLO_BURNING,
            args![project_id, event_type, 0_i64, ms(now)],
        )
        .await?;
    Ok(())
}
