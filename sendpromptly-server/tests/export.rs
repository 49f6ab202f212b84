//! The incident export as its users meet it, against a real `sendpromptly
//! serve` on a real SQLite file: `GET /v1/incidents/export` (JSON Lines and
//! CSV, the list's filters honoured, each line the incident's own API
//! body), the CSV read back by Python's `csv` module and compared with the
//! JSON Lines, `sendpromptly export incidents` (the real binary) giving the
//! same bytes, the console's Export button downloading with a signed-in
//! session, and a client hanging up mid-stream leaving the server healthy.

use std::process::Command;

use sendpromptly_server::testing::{ApiClient, ServeProcess, cli_ok, run_cli};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const EMAIL: &str = "exporter@example.com";
const PASSWORD: &str = "correct horse battery";

async fn incident(api: &ApiClient, event_id: &str, subject: &str, metadata: Value) -> String {
    let receipt = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid",
                   "subject": subject, "effect": "credits.add", "metadata": metadata}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    let failed = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure",
                   "error": "tenant \"acct_42\", not found\nretry later"}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    failed.json["incident"]["id"].as_str().unwrap().to_owned()
}

async fn get_text(
    http: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
) -> (u16, String, String) {
    let mut request = http.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let disposition = response
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, disposition, response.text().await.unwrap())
}

/// Python's `csv` module reads `csv_path`; each row must equal the JSONL
/// line at the same position, column by column (the core's rules).
fn python_agrees(csv_path: &std::path::Path, jsonl_path: &std::path::Path) {
    let columns: Vec<(&str, &str)> = sendpromptly_core::export::CSV_COLUMNS.to_vec();
    let script = r#"
import csv, json, sys
csv_path, jsonl_path, columns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(csv_path, newline="") as f:
    rows = list(csv.reader(f))
with open(jsonl_path) as f:
    lines = [json.loads(l) for l in f if l.strip()]
assert rows[0] == [name for name, _ in columns], rows[0]
assert len(rows) - 1 == len(lines), (len(rows), len(lines))
def at(value, pointer):
    for part in pointer.strip("/").split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
def cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
for row, line in zip(rows[1:], lines):
    for (name, pointer), text in zip(columns, row):
        want = at(line, pointer)
        if name in ("timeline", "metadata"):
            got = json.loads(text) if text else None
            assert got == want, (name, got, want)
        else:
            assert text == cell(want), (name, text, cell(want))
print("agree", len(lines))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(csv_path)
        .arg(jsonl_path)
        .arg(serde_json::to_string(&columns).unwrap())
        .output()
        .expect("python3 (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("agree 3"));
}

/// Signs in to the console over HTTP; the session cookie header.
async fn console_session(base: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let body = login.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a csrf field") + marker.len();
    let csrf = &body[start..][..body[start..].find('"').unwrap()];
    let signed = http
        .post(format!("{base}/login"))
        .header("cookie", cookies.join("; "))
        .form(&[
            ("email", EMAIL),
            ("password", PASSWORD),
            ("csrf", csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303, "sign-in");
    let mut all = cookies;
    for v in signed.headers().get_all("set-cookie") {
        let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
        let name = pair.split('=').next().unwrap().to_owned();
        all.retain(|c| !c.starts_with(&format!("{name}=")));
        all.push(pair);
    }
    all.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_filtered_incidents_as_jsonl_and_csv_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("export.db");
    let database_url = format!("sqlite://{}", db_path.display());
    cli_ok(BIN, &database_url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &["project", "create", "--name", "exp", "--json"],
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap();
    cli_ok(
        BIN,
        &database_url,
        &["user", "create", "--email", EMAIL, "--password", PASSWORD],
    );
    let serve = ServeProcess::start(BIN, &database_url, &[], &dir.path().join("serve.log"));
    let api = ApiClient::new(&serve.url, api_key);

    let tricky = json!({"note": "a, \"quoted\"\nsecond line", "amount": 1999});
    let mut ours = Vec::new();
    for n in 0..3 {
        ours.push(incident(&api, &format!("evt_a{n}"), "cus_a", tricky.clone()).await);
    }
    for n in 0..2 {
        incident(&api, &format!("evt_b{n}"), "cus_b", json!({})).await;
    }
    let resolved = api
        .post(
            &format!("/v1/incidents/{}/resolve", ours[0]),
            json!({"note": "credited by hand, see ticket #12"}),
        )
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);

    // JSON Lines: exactly the list's selection, each line the incident's body.
    let http = reqwest::Client::new();
    let with_key = |path: &str| {
        http.get(format!("{}{path}", serve.url))
            .bearer_auth(api_key)
            .send()
    };
    let response = with_key("/v1/incidents/export?format=jsonl&subject=cus_a")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/jsonl")
    );
    let jsonl = response.text().await.unwrap();
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let listed = api.get("/v1/incidents?subject=cus_a").await;
    let listed_ids: Vec<&str> = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let exported_ids: Vec<&str> = lines
        .iter()
        .map(|l| l["incident"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(exported_ids, listed_ids);
    assert_eq!(exported_ids.len(), 3);
    for line in &lines {
        let id = line["incident"]["id"].as_str().unwrap();
        let one = api.get(&format!("/v1/incidents/{id}")).await;
        assert_eq!(line, &one.json);
        assert!(line["timeline"][0]["hash"].as_str().is_some());
    }
    let only_resolved = with_key("/v1/incidents/export?state=resolved")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(only_resolved.lines().count(), 1);
    assert!(only_resolved.contains(&ours[0]));

    // CSV: Python's csv module reads it back equal to the JSON Lines.
    let csv = with_key("/v1/incidents/export?format=csv&subject=cus_a")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csv_path = dir.path().join("incidents.csv");
    let jsonl_path = dir.path().join("incidents.jsonl");
    std::fs::write(&csv_path, &csv).unwrap();
    std::fs::write(&jsonl_path, &jsonl).unwrap();
    python_agrees(&csv_path, &jsonl_path);

    // A wrong format or filter is named.
    let bad = api.get("/v1/incidents/export?format=xml").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json["error"]["param"], "format", "{}", bad.text);
    assert!(bad.text.contains("use jsonl or csv"), "{}", bad.text);
    let bad = api.get("/v1/incidents/export?state=lost").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json["error"]["param"], "state", "{}", bad.text);

    // The CLI writes the same bytes.
    let cli_csv = cli_ok(
        BIN,
        &database_url,
        &[
            "export",
            "incidents",
            "--project",
            "exp",
            "--format",
            "csv",
            "--subject",
            "cus_a",
        ],
    );
    assert_eq!(cli_csv, csv);
    let cli_jsonl = cli_ok(
        BIN,
        &database_url,
        &[
            "export",
            "incidents",
            "--project",
            "exp",
            "--subject",
            "cus_a",
        ],
    );
    assert_eq!(cli_jsonl, jsonl);
    let wrong = run_cli(
        BIN,
        &database_url,
        &["export", "incidents", "--project", "exp", "--format", "xls"],
    );
    assert!(!wrong.success);
    assert!(
        wrong
            .stderr
            .contains("--format: unknown export format `xls`"),
        "{}",
        wrong.stderr
    );

    // The console: the list's Export button carries its filters and downloads.
    let cookie = console_session(&serve.url).await;
    let (status, _, page) = get_text(
        &http,
        &format!("{}/incidents?subject=cus_a", serve.url),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    let marker = r#"id="export-csv" class="button secondary" download href=""#;
    let start = page.find(marker).expect("the Export CSV button") + marker.len();
    let href = page[start..][..page[start..].find('"').unwrap()].replace("&amp;", "&");
    assert!(href.contains("subject=cus_a"), "{href}");
    let (status, disposition, body) =
        get_text(&http, &format!("{}{href}", serve.url), Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(disposition, "attachment; filename=\"incidents.csv\"");
    assert_eq!(body, csv);
    // Without a session: the sign-in page, not the data.
    let (status, _, body) = get_text(
        &reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        &format!("{}{href}", serve.url),
        None,
    )
    .await;
    assert_ne!(status, 200);
    assert!(!body.contains("incident_id"));

    // Many incidents (set-based SQL, as bench/export.sh fills), then a client
    // that reads one chunk and hangs up: the server stays healthy and a full
    // export still completes.
    let fill = include_str!("../../bench/export-fill.sqlite.sql").replace("__N__", "2500");
    let mut sqlite3 = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(&db_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 (scripts/test-docs.sh installs it)");
    std::io::Write::write_all(&mut sqlite3.stdin.take().unwrap(), fill.as_bytes()).unwrap();
    let out = sqlite3.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..3 {
        let mut response = with_key("/v1/incidents/export?format=jsonl").await.unwrap();
        let first = response.chunk().await.unwrap().expect("a first chunk");
        assert!(!first.is_empty());
        drop(response);
    }
    let health = http
        .get(format!("{}/healthz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let all = with_key("/v1/incidents/export?format=csv")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv_reader(&all);
    assert_eq!(reader, 2500 + 5 + 1, "header and every incident");
    reader = with_key("/v1/incidents/export")
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .count();
    assert_eq!(reader, 2505);
}

/// Rows in `text` as a CSV reader counts them (quoted line breaks inside).
fn csv_reader(text: &str) -> usize {
    let mut rows = 0;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => rows += 1,
            _ => {}
        }
    }
    rows
}
