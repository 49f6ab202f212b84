//! The tamper-evident timeline against a real edit of the database: a real
//! `sendpromptly serve`, incidents with proof links, then rows of the
//! `timeline` table edited, deleted and reordered with the database's own
//! command-line client (`sqlite3`; `psql` for PostgreSQL, run by
//! scripts/test-postgres.sh). The proof page (over HTTP) and `sendpromptly
//! verify-timelines` (the real binary) name the broken entry; a rewrite
//! that also fixes the event's chain head is caught by the head the proof
//! link carries.

use std::process::Command;

use sendpromptly_server::testing::{ApiClient, ServeProcess, run_cli};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
/// A public test master key, so PostgreSQL instances and the CLI share it.
const TEST_SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The database under test and its command-line client.
struct Database {
    url: String,
    /// `sqlite3 <file>` or `psql <url>`.
    client: Vec<String>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<sendpromptly_server::store::postgres::testing::TestDatabase>,
}

impl Database {
    fn sqlite() -> Database {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tamper.db");
        Database {
            url: format!("sqlite://{}", path.display()),
            client: vec![
                "sqlite3".into(),
                "-cmd".into(),
                ".timeout 10000".into(),
                path.display().to_string(),
            ],
            _dir: Some(dir),
            _pg: None,
        }
    }

    async fn postgres() -> Option<Database> {
        use sendpromptly_server::store::postgres::testing;
        let pg = testing::TestDatabase::create(&testing::server_url("tamper")?).await;
        Some(Database {
            url: pg.url.clone(),
            client: vec![
                "psql".into(),
                pg.url.clone(),
                "-X".into(),
                "-q".into(),
                "-A".into(),
                "-t".into(),
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "-c".into(),
            ],
            _dir: None,
            _pg: Some(pg),
        })
    }

    /// Runs `sql` with the real client; its output lines.
    fn sql(&self, sql: &str) -> Vec<String> {
        let out = Command::new(&self.client[0])
            .args(&self.client[1..])
            .arg(sql)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{}` ({e}): install it (scripts/test-docs.sh installs sqlite3, \
                     scripts/test-postgres.sh PostgreSQL)",
                    self.client[0]
                )
            });
        assert!(
            out.status.success(),
            "{} failed on {sql}: {}",
            self.client[0],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The timeline rows' `seq`s of `event_id`, in order.
    fn seqs(&self, event_id: &str) -> Vec<i64> {
        self.sql(&format!(
            "SELECT t.seq FROM timeline t JOIN events e ON e.pk = t.event_pk \
             WHERE e.event_id = '{event_id}' ORDER BY t.seq"
        ))
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect()
    }

    /// Swaps the contents of timeline rows `a` and `b`, hashes included.
    fn swap_rows(&self, a: i64, b: i64) {
        let columns = ["at", "kind", "actor", "detail", "hash"];
        let read = |seq: i64| -> Vec<String> {
            columns
                .iter()
                .map(|c| {
                    self.sql(&format!("SELECT {c} FROM timeline WHERE seq = {seq}"))
                        .join("\n")
                })
                .collect()
        };
        let (va, vb) = (read(a), read(b));
        for (seq, values) in [(a, &vb), (b, &va)] {
            let set: Vec<String> = columns
                .iter()
                .zip(values.iter())
                .map(|(c, v)| match *c {
                    "at" => format!("{c} = {v}"),
                    _ => format!("{c} = '{}'", v.replace('\'', "''")),
                })
                .collect();
            self.sql(&format!(
                "UPDATE timeline SET {} WHERE seq = {seq}",
                set.join(", ")
            ));
        }
    }

    fn cli(&self, args: &[&str]) -> sendpromptly_server::testing::CliOutput {
        let mut with_key = vec!["--secret-key", TEST_SECRET_KEY];
        with_key.extend_from_slice(args);
        run_cli(BIN, &self.url, &with_key)
    }
}

/// An incident on `event_id` with a proof link; the link's path and query.
async fn incident_with_link(api: &ApiClient, event_id: &str) -> String {
    let receipt = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid", "subject": "cus_1"}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    let failed = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "worker down"}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    let incident = failed.json["incident"]["id"].as_str().unwrap().to_owned();
    let link = api
        .post(&format!("/v1/incidents/{incident}/proof-links"), json!({}))
        .await;
    assert_eq!(link.status, 201, "{}", link.text);
    let url = url::Url::parse(link.json["url"].as_str().unwrap()).unwrap();
    let query = url.query().expect("the link carries the chain head");
    assert!(query.starts_with("h="), "{url}");
    format!("{}?{query}", url.path())
}

async fn page(base: &str, path: &str) -> String {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn tampering_is_named(db: Database) {
    assert!(db.cli(&["migrate"]).success);
    let created = db.cli(&["project", "create", "--name", "tamper", "--json"]);
    assert!(created.success, "{}", created.stderr);
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    let api_key = created["api_key"].as_str().unwrap();
    let log = tempfile::tempdir().unwrap();
    let mut command = ServeProcess::command(BIN, &db.url, &[]);
    command.env("SENDPROMPTLY_SECRET_KEY", TEST_SECRET_KEY);
    let serve = ServeProcess::spawn(command, &log.path().join("serve.log"));
    let api = ApiClient::new(&serve.url, api_key);

    let edited = incident_with_link(&api, "evt_edited").await;
    let deleted = incident_with_link(&api, "evt_deleted").await;
    let reordered = incident_with_link(&api, "evt_reordered").await;
    let truncated = incident_with_link(&api, "evt_truncated").await;
    let rewritten = incident_with_link(&api, "evt_rewritten").await;

    // Untouched: verified, and the link's head is the current one.
    let html = page(&serve.url, &edited).await;
    assert!(html.contains("Timeline verified ("), "{html}");
    assert!(
        html.contains("Unchanged since this link was made."),
        "{html}"
    );
    let clean = db.cli(&["verify-timelines"]);
    assert!(clean.success, "{}{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("0 broken events"), "{}", clean.stdout);
    // The API shows each entry's hash.
    let incident = api.get("/v1/events/stripe/evt_edited").await;
    let timeline = incident.json["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64)),
        "{}",
        incident.text
    );

    // 1. An entry's content edited.
    let seqs = db.seqs("evt_edited");
    assert!(seqs.len() >= 3, "{seqs:?}");
    db.sql(&format!(
        "UPDATE timeline SET detail = '{{\"error\":\"nothing went wrong\"}}' WHERE seq = {}",
        seqs[1]
    ));
    // 2. An entry in the middle deleted.
    let del = db.seqs("evt_deleted");
    db.sql(&format!("DELETE FROM timeline WHERE seq = {}", del[1]));
    // 3. The first two entries swapped (contents and hashes; PostgreSQL's
    //    `seq` is an identity column, so rows trade places by content).
    let re = db.seqs("evt_reordered");
    db.swap_rows(re[0], re[1]);
    // 4. The last entry deleted.
    let tr = db.seqs("evt_truncated");
    db.sql(&format!(
        "DELETE FROM timeline WHERE seq = {}",
        tr[tr.len() - 1]
    ));
    // 5. The last entry deleted and the event's chain head set to match:
    //    consistent inside the database, caught by the link's head only.
    let rw = db.seqs("evt_rewritten");
    db.sql(&format!(
        "DELETE FROM timeline WHERE seq = {}",
        rw[rw.len() - 1]
    ));
    db.sql(&format!(
        "UPDATE events SET chain_head = (SELECT hash FROM timeline WHERE seq = {}) \
         WHERE event_id = 'evt_rewritten'",
        rw[rw.len() - 2]
    ));

    let html = page(&serve.url, &edited).await;
    assert!(
        html.contains("Timeline does not verify: entry 2, recorded "),
        "{html}"
    );
    assert!(html.contains("content does not match its hash"), "{html}");
    assert!(
        html.contains("The timeline changed since this link was made"),
        "{html}"
    );
    let html = page(&serve.url, &deleted).await;
    assert!(
        html.contains("Timeline does not verify: entry 2, recorded "),
        "{html}"
    );
    let html = page(&serve.url, &reordered).await;
    assert!(
        html.contains("Timeline does not verify: entry 1, recorded "),
        "{html}"
    );
    let html = page(&serve.url, &truncated).await;
    assert!(
        html.contains(&format!(
            "Timeline does not verify: after entry {}",
            tr.len() - 1
        )),
        "{html}"
    );
    assert!(
        html.contains("The timeline changed since this link was made"),
        "{html}"
    );
    let html = page(&serve.url, &rewritten).await;
    assert!(html.contains("Timeline verified ("), "{html}");
    assert!(
        html.contains("The timeline changed since this link was made"),
        "{html}"
    );

    // The whole database, as an operator runs it.
    let out = db.cli(&["verify-timelines"]);
    assert!(!out.success, "{}", out.stdout);
    let line = |event: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("stripe/{event} ")))
            .unwrap_or_else(|| panic!("{event} not named:\n{}", out.stdout))
            .to_owned()
    };
    assert!(
        line("evt_edited").contains(&format!("entry 2 (seq {}", seqs[1])),
        "{}",
        out.stdout
    );
    assert!(line("evt_edited").contains("content does not match its hash"));
    assert!(line("evt_deleted").contains(&format!("entry 2 (seq {}", del[2])));
    assert!(line("evt_reordered").contains(&format!("entry 1 (seq {}", re[0])));
    assert!(line("evt_truncated").contains(&format!("after entry {}", tr.len() - 1)));
    assert!(
        !out.stdout.contains("evt_rewritten"),
        "only the published head shows a consistent rewrite: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("timeline chain breaks in 4 events"),
        "{}",
        out.stderr
    );

    // --json: one object per break, then the summary.
    let json_out = db.cli(&["verify-timelines", "--json", "--project", "tamper"]);
    assert!(!json_out.success);
    let lines: Vec<Value> = json_out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let edit = lines
        .iter()
        .find(|l| l["event_id"] == "evt_edited")
        .expect("the edited event");
    assert_eq!(edit["seq"], json!(seqs[1]));
    assert_eq!(edit["reason"], "content_mismatch");
    assert_eq!(lines.last().unwrap()["broken_events"], 4);
    // An unknown project is named.
    let unknown = db.cli(&["verify-timelines", "--project", "nope"]);
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no project named `nope`"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_edits_deletions_and_reorders_are_named() {
    tampering_is_named(Database::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_edits_deletions_and_reorders_are_named() {
    let Some(db) = Database::postgres().await else {
        return;
    };
    tampering_is_named(db).await;
}
