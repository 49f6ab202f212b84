//! The console over real HTTP: sign-in, session cookies, CSRF, throttling,
//! every page rendering, and the incident actions recorded as the user.

use std::time::Duration;

use sendpromptly_server::provision;
use sendpromptly_server::testing::{CallbackReceiver, TestServer, eventually};
use serde_json::json;

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery";

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
    /// The value of the first `name="csrf" value="…"` hidden field.
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

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, page: &Page) {
        for cookie in page.set_cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        let page = Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        };
        self.remember(&page);
        page
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
        self.post_with(path, form, &[]).await
    }

    async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("cookie", self.cookie_header())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.finish(response).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let login = self.get("/login").await;
        assert_eq!(login.status, 200);
        let csrf = login.csrf();
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
        .await
    }
}

async fn server_with_user() -> TestServer {
    let server = TestServer::start().await;
    provision::create_user(server.store(), EMAIL, PASSWORD, server.clock_now())
        .await
        .expect("user");
    server
}

/// Records a receipt and a failure; returns the incident id.
async fn failed_incident(server: &TestServer, event_id: &str, subject: &str) -> String {
    let api = server.api();
    let receipt = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid",
                   "subject": subject, "effect": "credits.add",
                   "metadata": {"amount": 1999, "currency": "usd"}}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    let result = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure",
                   "error": "tenant acct_42 not found"}),
        )
        .await;
    assert_eq!(result.status, 200, "{}", result.text);
    result.json["incident"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_sets_a_hardened_session_cookie_and_sign_out_ends_it() {
    let server = server_with_user().await;
    let mut browser = Browser::new(&server);

    let anonymous = browser.get("/incidents?state=open").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(
        anonymous.location(),
        "/login?next=%2Fincidents%3Fstate%3Dopen"
    );

    let signed_in = browser.sign_in("Alice@Example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/");
    let session = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("sp_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP: {session}");

    let overview = browser.get("/").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(EMAIL));
    assert_eq!(overview.headers["x-frame-options"], "DENY");
    assert!(
        overview.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    let csrf = overview.csrf();
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/login");
    // The old cookie no longer opens anything (the session row is gone).
    let again = browser.get("/").await;
    assert_eq!(again.status, 303);
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_tls() {
    let server = server_with_user().await;
    let mut browser = Browser::new(&server);
    let login = browser.get("/login").await;
    let csrf = login.csrf();
    let page = browser
        .post_with(
            "/login",
            &[("email", EMAIL), ("password", PASSWORD), ("csrf", &csrf)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("sp_session=") && c.contains("; Secure"))
    );
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled() {
    let server = server_with_user().await;
    let mut browser = Browser::new(&server);
    let wrong = browser.sign_in(EMAIL, "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong email or password"));
    assert!(
        !wrong
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("sp_session="))
    );
    let unknown = browser.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401, "unknown users get the same answer");

    for _ in 1..5 {
        assert_eq!(browser.sign_in(EMAIL, "still wrong").await.status, 401);
    }
    let throttled = browser.sign_in(EMAIL, PASSWORD).await;
    assert_eq!(throttled.status, 429, "even the right password waits");
    assert!(throttled.headers.contains_key("retry-after"));
    assert!(throttled.body.contains("Too many failed sign-ins"));
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let server = server_with_user().await;
    let incident = failed_incident(&server, "evt_csrf", "cus_csrf").await;
    let mut browser = Browser::new(&server);

    // The sign-in form itself needs its double-submit token.
    browser.get("/login").await;
    let no_token = browser
        .post("/login", &[("email", EMAIL), ("password", PASSWORD)])
        .await;
    assert_eq!(no_token.status, 403);

    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let page = browser.get(&format!("/incidents/{incident}")).await;
    let csrf = page.csrf();

    let missing = browser
        .post(
            &format!("/incidents/{incident}/resolve"),
            &[("note", "done")],
        )
        .await;
    assert_eq!(missing.status, 403);
    assert!(missing.body.contains("CSRF"));
    let wrong = browser
        .post(
            &format!("/incidents/{incident}/resolve"),
            &[("note", "done"), ("csrf", "0000")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let still_open = server.api().get(&format!("/v1/incidents/{incident}")).await;
    assert_eq!(
        still_open.json["incident"]["state"], "open",
        "nothing changed"
    );

    // The header htmx sends works too.
    let via_header = browser
        .post_with(
            &format!("/incidents/{incident}/resolve"),
            &[("note", "applied by hand")],
            &[("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(via_header.status, 303, "{}", via_header.body);
    let resolved = server.api().get(&format!("/v1/incidents/{incident}")).await;
    assert_eq!(resolved.json["incident"]["state"], "resolved");
    let entry = resolved.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "incident.resolved")
        .unwrap()
        .clone();
    assert_eq!(entry["actor"], format!("console:{EMAIL}"));
}

#[tokio::test]
async fn every_page_renders() {
    let server = server_with_user().await;
    let incident = failed_incident(&server, "evt_pages/1", "cus_pages").await;
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);

    let expectations: Vec<(String, Vec<&str>)> = vec![
        (
            "/".into(),
            vec![
                "Needs attention",
                &incident,
                "Last 30 days",
                "<svg",
                "invoice.paid",
            ],
        ),
        (
            "/incidents".into(),
            vec![&incident, "tenant acct_42 not found"],
        ),
        (
            "/incidents?state=open&provider=stripe&q=PAGES".into(),
            vec![&incident],
        ),
        (
            "/incidents?state=resolved".into(),
            vec!["No incidents match"],
        ),
        (
            format!("/incidents/{incident}"),
            vec![
                "Reprocess",
                "Resolve",
                "Create proof link",
                "19.99 USD",
                "data-kind=\"incident.opened\"",
            ],
        ),
        ("/events".into(), vec!["evt_pages/1"]),
        (
            "/events?q=CUS_PAGES".into(),
            vec!["evt_pages/1", "No. The app reported a failure"],
        ),
        (
            "/events/stripe/evt_pages%2F1".into(),
            vec!["Applied?", "tenant acct_42 not found", "19.99 USD"],
        ),
        (
            "/settings".into(),
            vec!["Repair URL", "API keys", "Rotate signing secret", EMAIL],
        ),
    ];
    for (path, needles) in expectations {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_eq!(
            page.headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        for needle in needles {
            assert!(page.body.contains(needle), "{path} lacks {needle}");
        }
    }
    // The live part of a settled incident tells htmx to reload the page.
    let live = browser.get(&format!("/incidents/{incident}/live")).await;
    assert_eq!(live.status, 200);
    assert_eq!(
        live.headers["hx-redirect"],
        format!("/incidents/{incident}").as_str()
    );
    // No repair URL: Reprocess is disabled with the reason.
    let page = browser.get(&format!("/incidents/{incident}")).await;
    assert!(page.body.contains("id=\"reprocess-button\" disabled"));
    assert!(page.body.contains("no repair URL"));

    assert_eq!(browser.get("/incidents/inc_nope").await.status, 404);
    assert_eq!(browser.get("/events/stripe/evt_nope").await.status, 404);
    let js = browser.get("/assets/htmx.min.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert!(js.body.contains("htmx"));
    let css = browser.get("/assets/console.css").await;
    assert!(
        css.body.contains(".tl-row"),
        "the timeline component's styles are served"
    );
    // The API is untouched by the console.
    assert_eq!(server.api().get("/v1/incidents").await.status, 200);
    assert_eq!(
        reqwest::get(format!("{}/healthz", server.url()))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn console_actions_share_the_api_and_name_the_user() {
    let server = server_with_user().await;
    let incident = failed_incident(&server, "evt_actions", "cus_actions").await;
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let csrf = browser.get("/settings").await.csrf();

    // Settings: a bad URL is explained, a good one saved.
    let bad = browser
        .post(
            "/settings/general",
            &[
                ("csrf", &csrf),
                ("repair_url", "ftp://x"),
                ("default_deadline_seconds", "1800"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("repair_url"));
    let good = browser
        .post(
            "/settings/general",
            &[
                ("csrf", &csrf),
                ("repair_url", "https://app.example/repair"),
                ("default_deadline_seconds", "900"),
            ],
        )
        .await;
    assert_eq!(good.status, 303, "{}", good.body);
    let deadlines = browser
        .post(
            "/settings/deadlines",
            &[("csrf", &csrf), ("deadlines", "invoice.paid = 3600\n")],
        )
        .await;
    assert_eq!(deadlines.status, 303, "{}", deadlines.body);
    let project = server.api().get("/v1/project").await;
    assert_eq!(project.json["repair_url"], "https://app.example/repair");
    assert_eq!(project.json["default_deadline_seconds"], 900);
    assert_eq!(
        project.json["deadlines_by_event_type"]["invoice.paid"],
        3600
    );

    // API keys: created once, then revoked.
    let created = browser
        .post(
            "/settings/api-keys",
            &[("csrf", &csrf), ("name", "ci"), ("scope", "read")],
        )
        .await;
    assert_eq!(created.status, 201);
    let start = created.body.find("sp_live_").expect("the key is shown");
    let key: String = created.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert_eq!(
        server.api().with_key(&key).get("/v1/project").await.status,
        200
    );
    let rotated = browser
        .post("/settings/signing-secret/rotate", &[("csrf", &csrf)])
        .await;
    assert_eq!(rotated.status, 201);
    assert!(rotated.body.contains("whsec_"));

    // Reprocess as the user.
    let reprocess = browser
        .post(
            &format!("/incidents/{incident}/reprocess"),
            &[("csrf", &csrf), ("note", "customer asked")],
        )
        .await;
    assert_eq!(reprocess.status, 303, "{}", reprocess.body);
    let detail = server.api().get(&format!("/v1/incidents/{incident}")).await;
    let requested = detail.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reprocess.requested")
        .unwrap()
        .clone();
    assert_eq!(requested["actor"], format!("console:{EMAIL}"));
    // A second click while it is in flight is refused with the reason.
    let again = browser
        .post(
            &format!("/incidents/{incident}/reprocess"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("still being delivered"));

    // Proof link: shown once, opens signed out, revoked, gone.
    let proof = browser
        .post(
            &format!("/incidents/{incident}/proof-links"),
            &[("csrf", &csrf), ("expires_in_seconds", "86400")],
        )
        .await;
    assert_eq!(proof.status, 201, "{}", proof.body);
    let start = proof.body.find("/proof/").unwrap();
    let path: String = proof.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let public = reqwest::get(format!("{}{path}", server.url()))
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    let public = public.text().await.unwrap();
    assert!(
        public.contains("class=\"timeline\""),
        "the shared timeline component"
    );
    assert!(
        !public.contains("href=\"/incidents"),
        "no way into the console"
    );
    assert!(
        !public.contains(EMAIL),
        "the public page does not name users"
    );
    let link_id = {
        let start = proof.body.find("data-link=\"").unwrap() + "data-link=\"".len();
        proof.body[start..]
            .chars()
            .take_while(|c| *c != '"')
            .collect::<String>()
    };
    let revoked = browser
        .post(
            &format!("/incidents/{incident}/proof-links/{link_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(
        reqwest::get(format!("{}{path}", server.url()))
            .await
            .unwrap()
            .status(),
        404
    );

    // The switcher refuses unknown projects.
    let switch = browser
        .post(
            "/switch-project",
            &[("csrf", &csrf), ("project_id", "prj_nope")],
        )
        .await;
    assert_eq!(switch.status, 404);
}

#[tokio::test]
async fn the_opened_between_filter_narrows_the_list_and_the_bulk_reprocess() {
    let server = server_with_user().await;
    let api = server.api();
    let patched = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "http://127.0.0.1:9/repair"})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let hour = std::time::Duration::from_secs(3600);
    let start = server.clock_now().to_datetime();
    let early = failed_incident(&server, "evt_window_early", "cus_w").await;
    server.advance(2 * hour);
    let inside = [
        failed_incident(&server, "evt_window_in_1", "cus_w").await,
        failed_incident(&server, "evt_window_in_2", "cus_w").await,
    ];
    server.advance(2 * hour);
    let late = failed_incident(&server, "evt_window_late", "cus_w").await;
    let local = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let after = local(start + chrono::Duration::hours(1));
    let before = local(start + chrono::Duration::hours(3));

    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let list = browser
        .get(&format!(
            "/incidents?opened_after={after}&opened_before={before}"
        ))
        .await;
    assert_eq!(list.status, 200);
    for id in &inside {
        assert!(list.body.contains(id.as_str()), "{id} is listed");
    }
    assert!(!list.body.contains(early.as_str()) && !list.body.contains(late.as_str()));
    // The form shows the bounds, and "Reprocess all matching" carries them.
    assert!(list.body.contains(&format!(
        r#"name="opened_after" type="datetime-local" step="1" value="{after}""#
    )));
    let all_form = &list.body[list
        .body
        .find(r#"id="bulk-all-form""#)
        .expect("bulk-all form")..];
    assert!(all_form.contains(&format!(
        r#"<input type="hidden" name="opened_after" value="{after}">"#
    )));
    assert!(all_form.contains(&format!(
        r#"<input type="hidden" name="opened_before" value="{before}">"#
    )));
    // RFC 3339 works too and means the same.
    let rfc = browser
        .get(&format!(
            "/incidents?opened_after={after}Z&opened_before={before}%2B00:00"
        ))
        .await;
    assert_eq!(rfc.status, 200);
    assert!(rfc.body.contains(inside[0].as_str()) && !rfc.body.contains(early.as_str()));

    // The dry run of "all matching" selects only the window.
    let plan = browser
        .get(&format!(
            "/reprocess-batches/new?opened_after={after}&opened_before={before}"
        ))
        .await;
    assert_eq!(plan.status, 200);
    assert!(
        plan.body.contains(r#"<span id="plan-total">2</span>"#),
        "{}",
        plan.body
    );
    assert!(plan.body.contains(&format!(
        r#"<input type="hidden" name="opened_before" value="{before}">"#
    )));
    let csrf = plan.csrf();
    let started = browser
        .post(
            "/reprocess-batches",
            &[
                ("csrf", &csrf),
                ("opened_after", &after),
                ("opened_before", &before),
                ("rate_per_second", "0.01"),
                ("concurrency", "1"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let batch_id = started.location().trim_start_matches("/reprocess-batches/");
    let batch = api.get(&format!("/v1/reprocess-batches/{batch_id}")).await;
    assert_eq!(batch.json["counts"]["total"], 2, "{}", batch.text);
    let mut ids: Vec<&str> = batch.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = inside.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // A time that is not one is explained, not a server error.
    let bad = browser.get("/incidents?opened_after=yesterday").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("is not a time like"), "{}", bad.body);
}

/// The Reprocess form submitted twice at once, from two signed-in sessions
/// with valid CSRF tokens (a double click, or two people): one reprocess,
/// one 409, and the repair endpoint sees one delivery sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reprocess_form_submitted_twice_at_once_makes_one_reprocess_and_one_sequence() {
    let server = server_with_user().await;
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let patched = server
        .api()
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": receiver.url()})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let incident = failed_incident(&server, "evt_double", "cus_double").await;
    // The first attempt fails: the sequence is attempts 1 and 2.
    receiver.script(&[(503, Some("1"))]);

    let mut first = Browser::new(&server);
    let mut second = Browser::new(&server);
    for browser in [&mut first, &mut second] {
        assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    }
    let path = format!("/incidents/{incident}/reprocess");
    let csrf_first = first.get(&format!("/incidents/{incident}")).await.csrf();
    let csrf_second = second.get(&format!("/incidents/{incident}")).await.csrf();
    let form_first = [("csrf", csrf_first.as_str()), ("note", "first tab")];
    let form_second = [("csrf", csrf_second.as_str()), ("note", "second tab")];
    let (a, b) = tokio::join!(
        first.post(&path, &form_first),
        second.post(&path, &form_second),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 409], "{}\n{}", a.body, b.body);

    eventually(Duration::from_secs(10), "two attempts", || {
        server.advance(Duration::from_secs(2));
        let received = receiver.received().len();
        async move { (received >= 2).then_some(()) }
    })
    .await;
    // Nothing more arrives, however far the clock moves.
    server.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts: Vec<(String, u32)> = receiver
        .received()
        .iter()
        .map(|c| {
            let c = c.callback.as_ref().expect("verified");
            (c.reprocess_id.clone(), c.attempt)
        })
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].0, attempts[1].0, "one reprocess: {attempts:?}");
    assert_eq!((attempts[0].1, attempts[1].1), (1, 2), "{attempts:?}");
    let detail = server.api().get(&format!("/v1/incidents/{incident}")).await;
    let kinds: Vec<&str> = detail.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let requested: Vec<_> = detail.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reprocess.requested")
        .collect();
    assert_eq!(requested.len(), 1, "{kinds:?}");
    assert_eq!(requested[0]["actor"], format!("console:{EMAIL}"));
    assert_eq!(
        requested[0]["detail"]["reprocess_id"].as_str(),
        Some(attempts[0].0.as_str()),
        "{}",
        requested[0]
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "callback.attempt").count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_settings_page_sends_a_test_alert_with_its_csrf_token() {
    let server = server_with_user().await;
    let hooks = sendpromptly_server::testing::HookReceiver::start().await;
    let channels = serde_json::json!([{"type": "slack", "webhook_url": hooks.url("/slack")}]);
    let r = server
        .api()
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&serde_json::json!({ "alert_channels": channels })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let page = browser.get("/settings").await;
    assert!(page.body.contains("Send test alert"));
    let csrf = page.csrf();

    let refused = browser.post("/settings/alerts/test", &[]).await;
    assert_eq!(refused.status, 403);
    assert!(
        hooks.received().is_empty(),
        "nothing sent without the token"
    );

    let sent = browser
        .post("/settings/alerts/test", &[("csrf", &csrf)])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        sent.body
            .contains("Test alert sent. channel 0 (slack): sent (HTTP 200)"),
        "{}",
        sent.body
    );
    let got = hooks.received_on("/slack");
    assert_eq!(got.len(), 1);
    assert!(got[0].json().to_string().contains("TEST ALERT"));
}

/// What the outbound rule says about a loopback address without
/// `--allow-private-urls`: the same words wherever it is checked.
const PRIVATE_REFUSAL: &str = "127.0.0.1 is a private or loopback address; the operator must start the server with --allow-private-urls to reach it";

#[tokio::test]
async fn a_private_repair_url_is_refused_when_set_and_when_sent_with_the_same_words() {
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    use sendpromptly_server::testing::run_cli;
    let server = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        outbound: sendpromptly_server::outbound::OutboundPolicy {
            allow_private: false,
        },
        ..sendpromptly_server::testing::test_config()
    })
    .await;
    provision::create_user(server.store(), EMAIL, PASSWORD, server.clock_now())
        .await
        .expect("user");
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let private_url = receiver.url();
    let db = server.database_url.clone();

    // The CLI refuses it as `serve` would, unless told the same thing.
    let refused = tokio::task::spawn_blocking({
        let (db, url) = (db.clone(), private_url.clone());
        move || {
            run_cli(
                BIN,
                &db,
                &[
                    "project",
                    "create",
                    "--name",
                    "strict",
                    "--repair-url",
                    &url,
                ],
            )
        }
    })
    .await
    .expect("join");
    assert!(
        !refused.success,
        "a loopback repair URL was stored: {}",
        refused.stdout
    );
    assert!(refused.stderr.contains("repair_url"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(PRIVATE_REFUSAL),
        "{}",
        refused.stderr
    );
    // It says how to give this command the server's policy.
    assert!(
        refused
            .stderr
            .contains("if serve runs with --allow-private-urls, pass --allow-private-urls here too (or set SENDPROMPTLY_ALLOW_PRIVATE_URLS=true"),
        "{}",
        refused.stderr
    );
    // The environment variable `serve` reads is read here too.
    let from_env = tokio::task::spawn_blocking({
        let (db, url) = (db.clone(), private_url.clone());
        move || {
            std::process::Command::new(BIN)
                .args(["--database-url", &db, "project", "create", "--name", "env"])
                .args(["--repair-url", &url])
                .env("SENDPROMPTLY_LOG", "warn")
                .env("SENDPROMPTLY_ALLOW_PRIVATE_URLS", "true")
                .output()
                .expect("run sendpromptly")
        }
    })
    .await
    .expect("join");
    assert!(
        from_env.status.success(),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );
    let allowed = tokio::task::spawn_blocking({
        let (db, url) = (db.clone(), private_url.clone());
        move || {
            run_cli(
                BIN,
                &db,
                &[
                    "project",
                    "create",
                    "--name",
                    "lax",
                    "--repair-url",
                    &url,
                    "--allow-private-urls",
                ],
            )
        }
    })
    .await
    .expect("join");
    assert!(allowed.success, "{}", allowed.stderr);

    // The API and the console say the same.
    let api = server.api();
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({ "repair_url": private_url })),
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains(PRIVATE_REFUSAL), "{}", r.text);
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let csrf = browser.get("/settings").await.csrf();
    let page = browser
        .post(
            "/settings/general",
            &[
                ("csrf", &csrf),
                ("repair_url", &private_url),
                ("default_deadline_seconds", "1800"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains(PRIVATE_REFUSAL), "{}", page.body);

    // A URL stored before (an older version, or the server restarted
    // without --allow-private-urls): the settings page says it will be
    // refused, and the refused attempt is on the timeline in the same words.
    server
        .store()
        .update_project(
            &server.project.project_id,
            sendpromptly_server::store::ProjectPatch {
                repair_url: Some(Some(private_url.clone())),
                ..Default::default()
            },
        )
        .await
        .expect("store the URL");
    let settings = browser.get("/settings").await;
    assert_eq!(settings.status, 200);
    assert!(
        settings.body.contains(PRIVATE_REFUSAL),
        "the settings page does not warn: {}",
        settings.body
    );
    let incident = failed_incident(&server, "evt_private", "cus_private").await;
    let r = api
        .post(&format!("/v1/incidents/{incident}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let attempt = eventually(Duration::from_secs(10), "the refused attempt", || async {
        let detail = api.get(&format!("/v1/incidents/{incident}")).await;
        detail.json["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["kind"] == "callback.attempt").cloned())
    })
    .await;
    let error = attempt["detail"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("repair_url"), "{attempt}");
    assert!(error.contains(PRIVATE_REFUSAL), "{attempt}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the endpoint"
    );
    let page = browser.get(&format!("/incidents/{incident}")).await;
    assert!(page.body.contains(PRIVATE_REFUSAL), "{}", page.body);
}

#[tokio::test]
async fn a_failure_after_a_success_reads_as_ignored_on_the_event_page() {
    let server = server_with_user().await;
    let api = server.api();
    for (path, body) in [
        (
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_late", "event_type": "invoice.paid"}),
        ),
        (
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_late", "status": "success"}),
        ),
        (
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_late", "status": "failure",
                   "error": "late duplicate handler"}),
        ),
    ] {
        let r = api.post(path, body).await;
        assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text);
    }
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let page = browser.get("/events/stripe/evt_late").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The answer is the state machine's: success.
    assert!(
        page.body.contains("Yes. The app reported success"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("No. The app reported a failure"),
        "{}",
        page.body
    );
    // The late failure is on the timeline, said to be ignored and why.
    assert!(
        page.body
            .contains("Result: failure (ignored, success already recorded)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("late duplicate handler"),
        "{}",
        page.body
    );
}

/// What the outbound rule says about `repair.internal` when it resolves to
/// 127.0.0.1 and the server does not allow private addresses.
const DNS_REFUSAL: &str = "`repair.internal` resolves only to addresses SendPromptly may not call: 127.0.0.1 is a private or loopback address; the operator must start the server with --allow-private-urls to reach it";

#[tokio::test]
async fn a_repair_url_whose_name_resolves_to_a_private_address_is_shown_as_refused() {
    // `repair.internal` resolves to the loopback address (a name pointed at
    // an internal address after it was saved); the server is strict.
    let server = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        outbound: sendpromptly_server::outbound::OutboundPolicy {
            allow_private: false,
        },
        static_hosts: vec![(
            "repair.internal".to_owned(),
            std::net::IpAddr::from([127, 0, 0, 1]),
        )]
        .into(),
        ..sendpromptly_server::testing::test_config()
    })
    .await;
    provision::create_user(server.store(), EMAIL, PASSWORD, server.clock_now())
        .await
        .expect("user");
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let port = receiver
        .url()
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .expect("port")
        .to_owned();
    let url = format!("http://repair.internal:{port}/repair");

    // A name is saved (it is checked when it is resolved)…
    let api = server.api();
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({ "repair_url": url })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // …and the settings page says that this server will refuse it, and why.
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.status, 303);
    let settings = browser.get("/settings").await;
    assert_eq!(settings.status, 200);
    assert!(
        settings.body.contains(&format!(
            "will be refused when a callback is sent: repair_url: {DNS_REFUSAL}"
        )),
        "the settings page does not warn: {}",
        settings.body
    );

    // A reprocess: the refused attempt is on the timeline with the reason,
    // and nothing reached the endpoint.
    let incident = failed_incident(&server, "evt_dns", "cus_dns").await;
    let r = api
        .post(&format!("/v1/incidents/{incident}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let attempt = eventually(Duration::from_secs(10), "the refused attempt", || async {
        let detail = api.get(&format!("/v1/incidents/{incident}")).await;
        detail.json["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["kind"] == "callback.attempt").cloned())
    })
    .await;
    let error = attempt["detail"]["error"].as_str().unwrap_or_default();
    assert_eq!(
        error,
        format!("refused before sending: {DNS_REFUSAL}"),
        "{attempt}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the endpoint"
    );
    let page = browser.get(&format!("/incidents/{incident}")).await;
    assert!(page.body.contains(DNS_REFUSAL), "{}", page.body);
}

#[tokio::test]
async fn traced_timeline_entries_link_to_their_trace_with_the_projects_template() {
    let server = server_with_user().await;
    let mut browser = Browser::new(&server);
    browser.sign_in(EMAIL, PASSWORD).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let receipt = server
        .api()
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_traced", "event_type": "invoice.paid",
                   "traceparent": format!("00-{trace_id}-00f067aa0ba902b7-01")}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);

    // Without a template the trace id is shown, not linked.
    let page = browser.get("/events/stripe/evt_traced").await;
    assert!(
        page.body
            .contains(&format!("trace <code>{trace_id}</code>")),
        "{}",
        page.body
    );

    let settings = browser.get("/settings").await;
    let csrf = settings.csrf();
    let bad = browser
        .post(
            "/settings/tracing",
            &[
                ("csrf", &csrf),
                ("trace_url_template", "https://jaeger.local/trace/"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("{trace_id} placeholder"), "{}", bad.body);
    assert!(
        bad.body.contains("https://jaeger.local/trace/"),
        "the typed value is kept"
    );
    let saved = browser
        .post(
            "/settings/tracing",
            &[
                ("csrf", &csrf),
                (
                    "trace_url_template",
                    "https://jaeger.local/trace/{trace_id}?uiFind={span_id}",
                ),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    let page = browser.get("/events/stripe/evt_traced").await;
    let href = format!(r#"href="https://jaeger.local/trace/{trace_id}?uiFind=00f067aa0ba902b7""#);
    assert!(page.body.contains(&href), "{}", page.body);
}

/// The settings page sets the fulfilment SLOs, one per line: a typo is
/// refused naming the line (the text kept), a good list is what the API
/// and the Analytics page then show, and the change is in the audit log.
#[tokio::test]
async fn the_settings_page_sets_the_fulfilment_slos() {
    let server = server_with_user().await;
    let mut browser = Browser::new(&server);
    browser.sign_in(EMAIL, PASSWORD).await;
    let csrf = browser.get("/settings").await.csrf();

    let bad = browser
        .post(
            "/settings/slos",
            &[
                ("csrf", &csrf),
                ("slos", "invoice.paid 99.5 300\ncharge.refunded lots 60"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("line 2"), "{}", bad.body);
    assert!(
        bad.body.contains("charge.refunded lots 60"),
        "the typed text is kept"
    );
    let project = server.api().get("/v1/project").await;
    assert_eq!(
        project.json["slos"],
        json!([]),
        "nothing saved: {}",
        project.text
    );

    let saved = browser
        .post(
            "/settings/slos",
            &[
                ("csrf", &csrf),
                ("slos", "invoice.paid 99.5% 300s\ncharge.refunded 99 60 7"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let project = server.api().get("/v1/project").await;
    assert_eq!(
        project.json["slos"],
        json!([
            {"event_type": "charge.refunded", "objective_percent": 99.0, "threshold_seconds": 60, "window_days": 7},
            {"event_type": "invoice.paid", "objective_percent": 99.5, "threshold_seconds": 300, "window_days": 30}
        ]),
        "{}",
        project.text
    );
    let settings = browser.get("/settings").await;
    assert!(
        settings.body.contains("invoice.paid 99.5 300 30"),
        "{}",
        settings.body
    );
    let analytics = browser.get("/analytics").await;
    assert_eq!(analytics.status, 200);
    assert!(
        analytics.body.contains("charge.refunded"),
        "{}",
        analytics.body
    );
    let audit = server.api().get("/v1/audit-log?action=slo.update").await;
    assert_eq!(
        audit.json["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        audit.text
    );
}
