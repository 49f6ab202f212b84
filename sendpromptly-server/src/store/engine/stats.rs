//! Analytics (issue #25): the rollup rows the triggers of migration 0012
//! keep, the SLO objectives and their slot counts, and the burn episodes.

use sendpromptly_core::Timestamp;
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
) -> StoreResult<Vec<StatsRow>> {
    let rows = engine
        .read_all(sql::STATS_ROWS, args![project_id, ms(from), ms(to)])
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
            sql::SLO_COUNTS,
            args![project_id, event_type, ms(from), ms(to)],
        )
        .await?;
    let count = |c: &str| -> StoreResult<u64> {
        Ok(u64::try_from(row.opt_int(c)?.unwrap_or(0)).unwrap_or(0))
    };
    Ok((count("received")?, count("good")?))
}

pub(super) async fn set_slo_burning<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    event_type: &str,
    burning: bool,
    now: Timestamp,
) -> StoreResult<bool> {
    let changed = engine
        .backend
        .write_one(
            sql::SET_SLO_BURNING,
            args![project_id, event_type, i64::from(burning), ms(now)],
        )
        .await?;
    Ok(changed > 0)
}
