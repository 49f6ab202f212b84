//! Detection benchmark: how late incidents open after their deadlines, and
//! what the sweeper costs, with many events awaiting results.
//!
//! `cargo bench -p sendpromptly-server --bench detection` (run by
//! `bench/detection.sh`). Settings (environment): `BENCH_PENDING` (events
//! awaiting a result far in the future, default 1,000,000), `BENCH_PROBES`
//! (events whose deadline passes during the measurement, default 1,000),
//! `BENCH_DB` (the SQLite file; default a temporary one), `BENCH_WINDOW_MS`
//! (the CPU measurement window, default 5,000), `BENCH_PENDING_KIND`
//! (`receipt`, the default: events awaiting a result, timed to
//! `missing_result`; or `copy`: provider copies from the tap awaiting the
//! app's receipt, timed to `missing_receipt` after the receipt grace).
//!
//! The first `BENCH_APPLIED` events (default 10,000) are written through
//! `Store::apply` like the API does; the rest are copies of the first one's
//! rows (event, timeline, provider copy) made by set-based SQL, a million
//! per transaction, with only the event id changed: the same bytes and
//! index entries per event as the API writes, at ~100× the speed, so
//! `bench/detection.sh 10000000` fits in minutes. The sweeper loop is the server's: `sweep_due(now, 500)` until a short batch,
//! every 250 ms (the defaults of `--sweep-interval-ms` and the batch).
//!
//! Without `--bench` (i.e. under `cargo test --benches`), the defaults shrink
//! to a smoke run: 200 pending events, 20 probes, a 500 ms window.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sendpromptly_core::machine::{Command, Context};
use sendpromptly_core::model::{Actor, EventKey, LearnedVia, Provider, ProviderCopy, Receipt};
use sendpromptly_core::{Timestamp, ids};
use sendpromptly_server::store::Store;
use sendpromptly_server::store::sqlite::SqliteStore;

const SWEEP_BATCH: u32 = 500;
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What the tracked events wait for.
#[derive(Clone, Copy)]
enum Pending {
    /// The app's result after its receipt (`missing_result`).
    Result,
    /// The app's receipt after the provider's copy (`missing_receipt`).
    Receipt,
}

/// Tracks `event_id`, due `due_seconds` after `at`.
async fn track(
    store: &SqliteStore,
    project: &str,
    kind: Pending,
    event_id: String,
    due_seconds: u32,
    at: Timestamp,
) {
    let key = EventKey {
        provider: Provider::Stripe,
        event_id: event_id.clone(),
    };
    let command = match kind {
        Pending::Result => Command::Receipt {
            receipt: Receipt {
                traceparent: None,
                tracestate: None,
                provider: Provider::Stripe,
                event_id,
                event_type: "invoice.paid".into(),
                subject: Some("cus_bench".into()),
                effect: None,
                deadline_seconds: Some(due_seconds),
                metadata: None,
                occurred_at: None,
            },
            deadline_seconds: due_seconds,
        },
        Pending::Receipt => Command::Expected {
            copy: ProviderCopy {
                provider: Provider::Stripe,
                fingerprint: Some(format!("stripe:invoice.paid:{event_id}")),
                object_id: Some(format!("in_{event_id}")),
                event_id,
                event_type: "invoice.paid".into(),
                subject: Some("cus_bench".into()),
                amount: Some(1999),
                currency: Some("USD".into()),
                livemode: Some(true),
                created: Some(at),
                learned_via: LearnedVia::Tap,
            },
            receipt_grace_seconds: due_seconds,
        },
    };
    let ctx = Context {
        now: at,
        actor: Actor::ApiKey("key_bench".into()),
        new_incident_id: ids::new_id(ids::INCIDENT, at, &mut rand::thread_rng()),
    };
    store.apply(project, &key, command, ctx).await.unwrap();
}

/// One sweeper pass, as `sweeper::sweep_once` does it; returns the event ids handled.
async fn sweep(store: &SqliteStore) -> Vec<(String, Timestamp)> {
    let mut handled = Vec::new();
    loop {
        let report = store.sweep_due(now(), SWEEP_BATCH).await.unwrap();
        let at = now();
        for (_, transition) in &report.transitions {
            handled.push((transition.record.event_id.clone(), at));
        }
        if report.examined < SWEEP_BATCH as usize {
            return handled;
        }
    }
}

/// Copies `template`'s rows in every table keyed by its event (`events`,
/// then the tables with an `event_pk`) for event ids `evt_pending_{from}` ..
/// `evt_pending_{to - 1}`: text columns get the template id replaced, other
/// columns are copied as they are. Reads the columns from the schema, so it
/// follows migrations.
async fn copy_rows(url: &str, template: &str, from: usize, to: usize) {
    use sqlx::{Connection, Row};
    let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut db)
        .await
        .unwrap();
    let template_pk: i64 = sqlx::query_scalar("SELECT pk FROM events WHERE event_id = ?")
        .bind(template)
        .fetch_one(&mut db)
        .await
        .unwrap();
    // `events` first, then every table with an `event_pk` column.
    let mut tables = vec!["events".to_owned()];
    for row in sqlx::query(
        "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'event_pk' ORDER BY m.name",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    {
        tables.push(row.get(0));
    }
    // Each table's column list and the values copied from the template's
    // row: its own integer key left out (assigned anew), `event_pk` the new
    // event's, text with the template id swapped for `evt_pending_{n}`.
    let mut statements = Vec::new();
    for table in &tables {
        let mut list = Vec::new();
        let mut values = Vec::new();
        for row in sqlx::query(&format!(
            "SELECT name, pk FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .fetch_all(&mut db)
        .await
        .unwrap()
        {
            let (c, pk): (String, i64) = (row.get(0), row.get(1));
            if pk == 1 && c != "event_pk" {
                continue;
            }
            values.push(if c == "event_pk" {
                "e.pk".to_owned()
            } else {
                format!(
                    "CASE WHEN typeof(t.{c}) = 'text' \
                     THEN replace(t.{c}, '{template}', 'evt_pending_' || n.i) ELSE t.{c} END"
                )
            });
            list.push(c);
        }
        let (source, filter) = if table == "events" {
            ("n, events t".to_owned(), format!("t.pk = {template_pk}"))
        } else {
            (
                format!("n, {table} t, events e"),
                format!(
                    "t.event_pk = {template_pk} AND e.project_id = \
                     (SELECT project_id FROM events WHERE pk = {template_pk}) \
                     AND e.provider = 'stripe' AND e.event_id = 'evt_pending_' || n.i"
                ),
            )
        };
        statements.push(format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {source} WHERE {filter}",
            list.join(", "),
            values.join(", ")
        ));
    }
    const CHUNK: usize = 1_000_000;
    let mut lo = from;
    while lo < to {
        let hi = (lo + CHUNK).min(to);
        let series = format!(
            "WITH RECURSIVE n(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM n WHERE i < {})",
            hi - 1
        );
        let mut tx = db.begin().await.unwrap();
        for statement in &statements {
            sqlx::query(&format!("{series} {statement}"))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        eprintln!("  {hi} pending events in the database");
        lo = hi;
    }
    // The copy ran with `synchronous = OFF`: checkpoint its WAL and flush
    // the page cache now, so the measurements below meet a settled disk
    // (otherwise the sweeper's first commits pay for the copy's checkpoint
    // and wait behind gigabytes of writeback).
    let flushed = Instant::now();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await
        .unwrap();
    let synced = std::process::Command::new("sync").status();
    println!(
        "  copy checkpointed and flushed to disk in {:.1} s{}",
        flushed.elapsed().as_secs_f64(),
        if matches!(synced, Ok(status) if status.success()) {
            ""
        } else {
            " (`sync` failed)"
        }
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let pending = env_usize("BENCH_PENDING", if full { 1_000_000 } else { 200 });
    let probes = env_usize("BENCH_PROBES", if full { 1_000 } else { 20 });
    let kind = match std::env::var("BENCH_PENDING_KIND").as_deref() {
        Ok("copy") => Pending::Receipt,
        Ok("receipt") | Err(_) => Pending::Result,
        Ok(other) => panic!("BENCH_PENDING_KIND is `receipt` or `copy`, not `{other}`"),
    };
    let (waiting_for, incident_kind) = match kind {
        Pending::Result => ("a result", "missing_result"),
        Pending::Receipt => ("the app's receipt (provider copies)", "missing_receipt"),
    };
    let window =
        Duration::from_millis(env_usize("BENCH_WINDOW_MS", if full { 5_000 } else { 500 }) as u64);
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("BENCH_DB")
        .unwrap_or_else(|_| dir.path().join("detection.db").display().to_string());
    let url = format!("sqlite://{path}");
    // The key file beside the database, as `sendpromptly serve` reads it:
    // bench/detection.sh then starts the server on this database.
    let key_file = sendpromptly_server::secrets::key_file_beside(&url).expect("a file database");
    let (key, _) = sendpromptly_server::secrets::read_or_create_key_file(&key_file).unwrap();
    let store = SqliteStore::connect(&url)
        .await
        .unwrap()
        .with_keyring(std::sync::Arc::new(
            sendpromptly_server::secrets::Keyring::new(&key, &[]),
        ));
    store.migrate().await.unwrap();
    let project =
        sendpromptly_server::provision::create_project(&store, "detection-bench", None, now())
            .await
            .unwrap()
            .project_id;

    let start = Instant::now();
    let t0 = now();
    let applied = pending.min(env_usize("BENCH_APPLIED", 10_000).max(1));
    for i in 0..applied {
        // A week away: pending for the whole run.
        track(
            &store,
            &project,
            kind,
            format!("evt_pending_{i}"),
            604_800,
            t0,
        )
        .await;
        if i > 0 && i % 100_000 == 0 {
            eprintln!(
                "  {i} pending events written ({:.0}/s)",
                i as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let applied_in = start.elapsed();
    println!(
        "pending events awaiting {waiting_for}: {applied} written through Store::apply in {:.1} s ({:.0}/s)",
        applied_in.as_secs_f64(),
        applied as f64 / applied_in.as_secs_f64().max(1e-9)
    );
    if pending > applied {
        let copied = Instant::now();
        copy_rows(&url, "evt_pending_0", applied, pending).await;
        println!(
            "  and {} more copied from evt_pending_0's rows by set-based SQL in {:.1} s ({:.0}/s)",
            pending - applied,
            copied.elapsed().as_secs_f64(),
            (pending - applied) as f64 / copied.elapsed().as_secs_f64().max(1e-9)
        );
    }
    let fill = start.elapsed();
    println!(
        "fill: {pending} pending events in {:.1} s",
        fill.as_secs_f64()
    );

    // Sweeper CPU with nothing due: a fixed window of passes every 250 ms.
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    while wall0.elapsed() < window {
        let handled = sweep(&store).await;
        assert!(handled.is_empty(), "nothing should be due yet");
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
    let cpu = cpu_time().saturating_sub(cpu0);
    println!(
        "sweeper CPU with {pending} pending, nothing due: {:.2} ms per second of wall time ({} ms over {:.1} s)",
        cpu.as_secs_f64() * 1000.0 / wall0.elapsed().as_secs_f64(),
        cpu.as_millis(),
        wall0.elapsed().as_secs_f64()
    );

    // Probes: deadlines 1 s after their receipt, spread over ~1 s; the sweeper
    // loop runs alongside and records when each incident opened.
    let mut due: HashMap<String, Timestamp> = HashMap::new();
    let spread = 1000 / probes.max(1) as i64;
    let base = now();
    for i in 0..probes {
        let at = base.plus_millis(i as i64 * spread);
        let id = format!("evt_probe_{i}");
        track(&store, &project, kind, id.clone(), 1, at).await;
        due.insert(id, at.plus_seconds(1));
    }
    let mut lags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lags.len() < probes && Instant::now() < deadline {
        for (id, at) in sweep(&store).await {
            if let Some(d) = due.get(&id) {
                lags.push(at.unix_millis() - d.unix_millis());
            }
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
    lags.sort_unstable();
    assert_eq!(lags.len(), probes, "every probe's incident opened");
    let pct = |p: f64| lags[((lags.len() as f64 * p).ceil() as usize).clamp(1, lags.len()) - 1];
    println!(
        "{incident_kind} open lag after the deadline over {probes} deadlines: min {} ms, p50 {} ms, p99 {} ms, max {} ms (sweep interval {} ms)",
        lags[0],
        pct(0.5),
        pct(0.99),
        lags[lags.len() - 1],
        SWEEP_INTERVAL.as_millis()
    );
    println!(
        "bench process RSS (store pools and caches, no HTTP server): {} MiB",
        rss_kib() / 1024
    );
}
