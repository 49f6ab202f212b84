//! The audit log (issue #24) over real HTTP on a real SQLite file: each
//! audited action through the API and the console records its entry with
//! the actor and IP, no secret value reaches the audit table, pages and
//! filters of `GET /v1/audit-log`, the `sendpromptly audit` and `key list`
//! output, the retention purge, and which keys are over-privileged.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_core::scope::ScopeSet;
use sendpromptly_server::provision;
use sendpromptly_server::testing::{TestServer, cli_ok, eventually, test_config};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const EMAIL: &str = "auditor@example.com";
const PASSWORD: &str = "correct horse battery";

/// Every column of every audit row, as one text (to look for secrets).
async fn audit_table_text(server: &TestServer) -> String {
    let path = server.dir().join("sendpromptly.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id || ' ' || project_id || ' ' || actor || ' ' || COALESCE(ip, '') || ' ' \
         || action || ' ' || target || ' ' || COALESCE(before_json, '') || ' ' \
         || COALESCE(after_json, '') FROM audit_log",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!rows.is_empty(), "the audit table has rows");
    pool.close().await;
    format!("{rows:?}")
}

async fn all_entries(api: &sendpromptly_server::testing::ApiClient) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit-log?limit=100&cursor={c}"),
            None => "/v1/audit-log?limit=100".to_owned(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        entries.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}

fn find<'a>(entries: &'a [Value], action: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {entries:#?}"))
}

#[tokio::test]
async fn api_actions_are_audited_with_actor_ip_and_no_secret() {
    let server = TestServer::start().await;
    let api = server.api();
    let admin_key_id = server
        .store()
        .list_api_keys(&server.project.project_id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.scopes == ScopeSet::ADMIN)
        .unwrap()
        .id;

    let slack_secret = "T000/B000/slacksecretXYZW1234";
    let repair_token = "repairtokenABCD9876";
    let whsec = "whsec_endpointsecretQWERTY5555";
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({
                "repair_url": format!("https://app.example/repair?token={repair_token}"),
                "alert_channels": [{"type": "slack", "webhook_url": format!("https://hooks.slack.com/services/{slack_secret}")}],
                "provider_tap": {"stripe_endpoint_secrets": [whsec]},
            })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = api
        .post("/v1/project/signing-secrets/rotate", json!({}))
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let new_secret = rotated.json["secret"].as_str().unwrap().to_owned();

    let failed = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_audit", "status": "failure"}),
        )
        .await;
    let incident = failed.json["incident"]["id"].as_str().unwrap().to_owned();
    let link = api
        .post(&format!("/v1/incidents/{incident}/proof-links"), json!({}))
        .await;
    assert_eq!(link.status, 201, "{}", link.text);
    let link_id = link.json["id"].as_str().unwrap().to_owned();
    let revoke = api
        .send(
            Method::DELETE,
            &format!("/v1/proof-links/{link_id}"),
            None,
            &[],
        )
        .await;
    assert!(revoke.status < 300, "{}", revoke.text);
    let batch = api
        .post(
            "/v1/reprocess-batches",
            json!({"incident_ids": [incident.clone()], "note": "after the outage"}),
        )
        .await;
    assert_eq!(batch.status, 202, "{}", batch.text);
    let batch_id = batch.json["id"].as_str().unwrap().to_owned();
    let cancel = api
        .post(
            &format!("/v1/reprocess-batches/{batch_id}/cancel"),
            json!({}),
        )
        .await;
    assert!(cancel.status < 300, "{}", cancel.text);

    let entries = all_entries(&api).await;
    let actor = format!("api_key:{admin_key_id}");
    for e in &entries {
        assert_eq!(e["actor"], actor.as_str(), "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
    }
    let update = find(&entries, "project.update");
    assert_eq!(update["target"], server.project.project_id.as_str());
    assert_eq!(update["before"]["repair_url"], Value::Null);
    assert_eq!(update["after"]["repair_url"], "…9876", "a hint only");
    let tap = find(&entries, "provider_tap.update");
    assert_eq!(tap["before"]["stripe_endpoint_secrets"], json!([]));
    assert_eq!(tap["after"]["stripe_endpoint_secrets"], json!(["…5555"]));
    let rotation = find(&entries, "signing_secret.rotate");
    assert_eq!(
        rotation["after"]["secret"],
        format!("…{}", &new_secret[new_secret.len() - 4..]).as_str()
    );
    assert_eq!(
        find(&entries, "proof_link.create")["target"],
        link_id.as_str()
    );
    assert_eq!(
        find(&entries, "proof_link.revoke")["target"],
        link_id.as_str()
    );
    let started = find(&entries, "reprocess_batch.start");
    assert_eq!(started["target"], batch_id.as_str());
    assert_eq!(started["after"]["incidents"], 1);
    assert_eq!(
        find(&entries, "reprocess_batch.cancel")["target"],
        batch_id.as_str()
    );
    // Newest first.
    assert_eq!(entries[0]["action"], "reprocess_batch.cancel");

    let table = audit_table_text(&server).await;
    for secret in [
        slack_secret,
        repair_token,
        whsec,
        new_secret.as_str(),
        &server.project.signing_secret,
    ] {
        assert!(!table.contains(secret), "{secret} is in the audit table");
    }

    // A change that changes nothing records nothing.
    let before = entries.len();
    let same = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(
                &json!({"repair_url": format!("https://app.example/repair?token={repair_token}")}),
            ),
            &[],
        )
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(all_entries(&api).await.len(), before);
}

#[tokio::test]
async fn pages_and_filters_of_the_audit_log() {
    let server = TestServer::start().await;
    let api = server.api();
    for i in 0..25u32 {
        let r = api
            .send(
                Method::PATCH,
                "/v1/project",
                Some(&json!({"default_deadline_seconds": 600 + i})),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let mut seen = Vec::new();
    let mut cursor = None::<String>;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit-log?limit=10&action=project.update&cursor={c}"),
            None => "/v1/audit-log?limit=10&action=project.update".to_owned(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        for e in page.json["data"].as_array().unwrap() {
            seen.push(e["after"]["default_deadline_seconds"].as_u64().unwrap());
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<u64> = (0..25u64).rev().map(|i| 600 + i).collect();
    assert_eq!(seen, expected, "every entry once, newest first");

    let none = api.get("/v1/audit-log?actor=cli").await;
    assert_eq!(none.json["data"], json!([]));
    let future = api.get("/v1/audit-log?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future.json["data"], json!([]));
    let bad = api.get("/v1/audit-log?since=yesterday").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json["error"]["param"], "since");
    let bad = api.get("/v1/audit-log?cursor=garbage").await;
    assert!(bad.status == 404 || bad.status == 422, "{}", bad.text);
}

// Multi-threaded: the CLI runs (blocking) beside the server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_scoped_keys_and_prints_the_audit_log() {
    let server = TestServer::start().await;
    let url = &server.database_url;
    let created = cli_ok(
        BIN,
        url,
        &[
            "key",
            "create",
            "--project",
            "default",
            "--scope",
            "read,operate",
            "--json",
        ],
    );
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    assert_eq!(created["scopes"], json!(["read", "operate"]));
    let key = created["api_key"].as_str().unwrap();
    let bad = sendpromptly_server::testing::run_cli(
        BIN,
        url,
        &["key", "create", "--project", "default", "--scope", "root"],
    );
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("unknown scope `root`"),
        "{}",
        bad.stderr
    );

    let api = server.api().with_key(key);
    assert_eq!(api.get("/v1/incidents").await.status, 200);
    assert_eq!(api.get("/v1/audit-log").await.status, 403);

    let text = cli_ok(BIN, url, &["audit", "--project", "default"]);
    let line = text.lines().next().expect("one entry");
    assert!(line.contains("\tcli\t-\tapi_key.create\tkey_"), "{text}");
    assert!(!text.contains(key), "the key itself is never recorded");
    let json_lines = cli_ok(BIN, url, &["audit", "--project", "default", "--json"]);
    let entry: Value = serde_json::from_str(json_lines.lines().next().unwrap()).unwrap();
    assert_eq!(entry["actor"], "cli");
    assert_eq!(entry["after"]["scopes"], json!(["read", "operate"]));
    let since_future = cli_ok(
        BIN,
        url,
        &[
            "audit",
            "--project",
            "default",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!(since_future.trim(), "");
    let bad = sendpromptly_server::testing::run_cli(BIN, url, &["audit", "--since", "yesterday"]);
    assert!(
        bad.stderr
            .contains("--since `yesterday` is not an RFC 3339 time"),
        "{}",
        bad.stderr
    );

    let key_id = entry["target"].as_str().unwrap();
    cli_ok(
        BIN,
        url,
        &["key", "revoke", "--project", "default", "--key-id", key_id],
    );
    let text = cli_ok(
        BIN,
        url,
        &[
            "audit",
            "--project",
            "default",
            "--action",
            "api_key.revoke",
        ],
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        server.api().with_key(key).get("/v1/incidents").await.status,
        401
    );
}

#[tokio::test]
async fn old_entries_are_purged_by_the_retention_loop() {
    let config = sendpromptly_server::config::ServerConfig {
        audit_retention: Some(Duration::from_secs(86_400)),
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    let api = server.api();
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"default_deadline_seconds": 900})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(all_entries(&api).await.len(), 1);
    server.advance(Duration::from_secs(2 * 86_400));
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"default_deadline_seconds": 901})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let left = eventually(Duration::from_secs(10), "the old entry purged", || async {
        let entries = all_entries(&api).await;
        (entries.len() == 1).then_some(entries)
    })
    .await;
    assert_eq!(
        left[0]["after"]["default_deadline_seconds"], 901,
        "the new one stays"
    );
}

// Multi-threaded: the CLI runs (blocking) beside the server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_show_what_they_are_used_for_and_which_are_over_privileged() {
    let config = sendpromptly_server::config::ServerConfig {
        key_usage_interval: Duration::from_millis(50),
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    let handler_admin = provision::create_api_key(
        server.store(),
        &server.project.project_id,
        Some("handler (too strong)".into()),
        ScopeSet::ADMIN,
        server.clock_now(),
    )
    .await
    .unwrap();
    let r = server
        .api()
        .with_key(&handler_admin)
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_use", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let listed = eventually(
        Duration::from_secs(10),
        "the key's use recorded",
        || async {
            let out = cli_ok(
                BIN,
                &server.database_url,
                &["key", "list", "--project", "default"],
            );
            out.contains("handler (too strong)\tadmin\tactive\tlast used")
                .then_some(out)
        },
    )
    .await;
    let line = listed
        .lines()
        .find(|l| l.contains("handler (too strong)"))
        .unwrap();
    assert!(
        line.contains("(ingest)\t⚠ admin key only used for ingest — create an ingest key"),
        "{line}"
    );
    let ingest_line = listed
        .lines()
        .find(|l| l.contains("webhook handler"))
        .unwrap();
    assert!(
        ingest_line.contains("never used") && !ingest_line.contains('⚠'),
        "{ingest_line}"
    );

    // The console's key list says the same.
    provision::create_user(server.store(), EMAIL, PASSWORD, server.clock_now())
        .await
        .unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let settings = browser.get("/settings").await;
    assert!(
        settings
            .body
            .contains("admin key only used for ingest — create an ingest key"),
        "{}",
        settings.body
    );
}

#[tokio::test]
async fn console_actions_are_audited_as_the_user() {
    let server = TestServer::start().await;
    provision::create_user(server.store(), EMAIL, PASSWORD, server.clock_now())
        .await
        .unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let settings = browser.get("/settings").await;
    let csrf = settings.csrf();

    let repair_token = "consoletokenLMNO4321";
    let saved = browser
        .post(
            "/settings/general",
            &[
                ("csrf", &csrf),
                (
                    "repair_url",
                    &format!("https://app.example/repair?token={repair_token}"),
                ),
                ("default_deadline_seconds", "1800"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let whsec = "whsec_consolesecretZZZZ7777";
    let tap = browser
        .post(
            "/settings/provider-tap",
            &[
                ("csrf", &csrf),
                ("stripe_endpoint_secrets", whsec),
                ("tracked", "invoice.paid"),
                ("receipt_grace_seconds", "900"),
            ],
        )
        .await;
    assert_eq!(tap.status, 303, "{}", tap.body);
    let created = browser
        .post(
            "/settings/api-keys",
            &[("csrf", &csrf), ("name", "reporting"), ("scope", "read")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.contains("API key created (scope read)."));
    let shown_key = {
        let at = created
            .body
            .find("sp_live_")
            .expect("the new key shown once");
        created.body[at..]
            .split(|c: char| c == '<' || c == '"' || c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    };
    let rotated = browser
        .post("/settings/signing-secret/rotate", &[("csrf", &csrf)])
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let new_secret = {
        let at = rotated
            .body
            .find("whsec_")
            .expect("the new secret shown once");
        rotated.body[at..]
            .split(|c: char| c == '<' || c == '"' || c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    };
    let key_id = server
        .store()
        .list_api_keys(&server.project.project_id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name.as_deref() == Some("reporting"))
        .unwrap()
        .id;
    let revoked = browser
        .post(
            &format!("/settings/api-keys/{key_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);

    let entries = all_entries(&server.api()).await;
    let actions: Vec<_> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "project.update",
        "provider_tap.update",
        "api_key.create",
        "signing_secret.rotate",
        "api_key.revoke",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    for e in &entries {
        assert_eq!(e["actor"], format!("user:{EMAIL}").as_str(), "{e}");
        assert_eq!(e["ip"], "127.0.0.1");
    }
    assert_eq!(
        find(&entries, "api_key.create")["after"]["scopes"],
        json!(["read"])
    );
    let table = audit_table_text(&server).await;
    for secret in [repair_token, whsec, new_secret.as_str(), shown_key.as_str()] {
        assert!(!table.contains(secret), "{secret} is in the audit table");
    }

    // The console's Audit log page lists them; its filter narrows.
    let page = browser.get("/audit-log").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"aria-current="page">Audit log"#),
        "nav"
    );
    for action in &actions {
        assert!(page.body.contains(action), "{action} not on the page");
    }
    assert!(!page.body.contains(repair_token));
    let filtered = browser.get("/audit-log?action=api_key.revoke").await;
    assert_eq!(
        filtered.body.matches("class=\"mono audit-action\"").count(),
        1
    );
    assert!(filtered.body.contains(&key_id));
}

// A small cookie-keeping HTTP client for the console (as tests/console.rs).

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        self.body[start..][..self.body[start..].find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url(),
            cookies: Vec::new(),
        }
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for cookie in response.headers().get_all("set-cookie") {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    async fn sign_in(&mut self) {
        let login = self.get("/login").await;
        let csrf = login.csrf();
        let signed = self
            .post(
                "/login",
                &[
                    ("email", EMAIL),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(signed.status, 303, "{}", signed.body);
    }
}
