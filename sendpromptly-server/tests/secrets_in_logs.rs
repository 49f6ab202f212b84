//! Secrets never reach the logs: a full workflow against the real binary at
//! `debug` level (CLI set-up, receipts, results, reprocess with a delivered
//! callback, proof link and proof page, secret rotation, console sign-in and
//! a wrong password), then every line the processes wrote is scanned for the
//! API key, the signing secrets, the master key that encrypts them, the
//! proof token, the password and the session cookie.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const PASSWORD: &str = "correct horse battery staple";

fn cli(database_url: &str, args: &[&str], log: &mut String) -> String {
    let out = Command::new(BIN)
        .args(["--database-url", database_url])
        .args(args)
        .env("SENDPROMPTLY_LOG", "debug")
        .output()
        .expect("run sendpromptly");
    assert!(out.status.success(), "{args:?}");
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn set_cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_of(body: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a csrf field") + marker.len();
    body[start..][..body[start..].find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_workflow_at_debug_level_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let mut log = String::new();

    // A repair endpoint that accepts everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let repair_url = format!("http://{}/repair", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/repair", axum::routing::post(|| async { "ok" }));
        let _ = axum::serve(listener, app).await;
    });

    cli(&database_url, &["migrate"], &mut log);
    let created: Value = serde_json::from_str(&cli(
        &database_url,
        &["project", "create", "--name", "logs", "--json"],
        &mut log,
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let first_secret = created["signing_secret"].as_str().unwrap().to_owned();
    cli(
        &database_url,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            PASSWORD,
        ],
        &mut log,
    );

    let log_path = dir.path().join("server.log");
    let mut child = Command::new(BIN)
        .args(["--database-url", &database_url])
        .args(["serve", "--allow-private-urls", "--listen", "127.0.0.1:0"])
        .args(["--sweep-interval-ms", "50"])
        .env("SENDPROMPTLY_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the server starts").unwrap();
        if let Some(rest) = line.strip_prefix("SendPromptly is listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&api_key)
    };

    let r = api(reqwest::Method::PATCH, "/v1/project")
        .json(&json!({"repair_url": repair_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api(reqwest::Method::POST, "/v1/receipt")
        .header("Idempotency-Key", "receipt-1")
        .json(
            &json!({"provider": "stripe", "event_id": "evt_logs", "event_type": "invoice.paid",
                      "subject": "cus_logs", "deadline_seconds": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = api(reqwest::Method::POST, "/v1/result")
        .json(
            &json!({"provider": "stripe", "event_id": "evt_logs", "status": "failure",
                      "error": "tenant not found"}),
        )
        .send()
        .await
        .unwrap();
    let incident: Value = r.json().await.unwrap();
    let incident_id = incident["incident"]["id"].as_str().unwrap().to_owned();
    let r = api(
        reqwest::Method::POST,
        &format!("/v1/incidents/{incident_id}/reprocess"),
    )
    .json(&json!({"note": "logs"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let started = Instant::now();
    loop {
        let detail: Value = api(
            reqwest::Method::GET,
            &format!("/v1/incidents/{incident_id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        if detail["incident"]["reprocess"]["status"] == "delivered" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{detail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let link: Value = api(
        reqwest::Method::POST,
        &format!("/v1/incidents/{incident_id}/proof-links"),
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let proof_url = link["url"].as_str().unwrap().to_owned();
    let proof_token = proof_url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(http.get(&proof_url).send().await.unwrap().status(), 200);
    let rotated: Value = api(reqwest::Method::POST, "/v1/project/signing-secrets/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_secret = rotated["secret"]
        .as_str()
        .or_else(|| rotated["signing_secret"].as_str())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();
    // A bad key and a wrong password are logged without their values.
    let _ = http
        .get(format!("{base}/v1/incidents"))
        .bearer_auth("sp_live_not_a_real_key_but_secret_looking")
        .send()
        .await
        .unwrap();

    // Console: a wrong password, then a sign-in.
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    let cookies = set_cookies(&login);
    let csrf = csrf_of(&login.text().await.unwrap());
    let wrong = "wrong horse battery staple";
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", &cookies)
        .form(&[
            ("email", "ops@example.com"),
            ("password", wrong),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 303);
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", &cookies)
        .form(&[
            ("email", "ops@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in");
    let session = set_cookies(&r);
    assert!(!session.is_empty());
    let overview = http
        .get(format!("{base}/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);

    let _ = child.kill();
    let _ = child.wait();
    log.push_str(&std::fs::read_to_string(&log_path).unwrap());
    assert!(
        log.lines().count() > 20,
        "debug logging produced too little to be a meaningful scan:\n{log}"
    );
    let session_values: Vec<&str> = session
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v))
        .filter(|v| v.len() >= 16)
        .collect();
    let mut secrets = vec![
        ("API key", api_key.as_str()),
        ("signing secret", first_secret.as_str()),
        ("rotated signing secret", second_secret.as_str()),
        ("proof token", proof_token.as_str()),
        ("password", PASSWORD),
        ("wrong password", wrong),
        ("bad API key", "sp_live_not_a_real_key_but_secret_looking"),
    ];
    for value in &session_values {
        secrets.push(("session cookie", value));
    }
    // The base64 body of a `whsec_` secret too.
    let first_raw = first_secret.trim_start_matches("whsec_").to_owned();
    let second_raw = second_secret.trim_start_matches("whsec_").to_owned();
    secrets.push(("signing secret (raw)", &first_raw));
    secrets.push(("rotated signing secret (raw)", &second_raw));
    // The master key generated beside the database (encrypts the above at rest).
    let master_key = std::fs::read_to_string(dir.path().join("logs.db.secret-key"))
        .expect("the generated key file")
        .trim()
        .to_owned();
    assert!(master_key.len() >= 43, "{master_key}");
    secrets.push(("master secret key", &master_key));
    for (what, secret) in secrets {
        for line in log.lines() {
            assert!(!line.contains(secret), "the {what} is in the logs: {line}");
        }
    }
}
