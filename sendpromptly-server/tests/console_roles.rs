//! Console roles over real HTTP: every console route × viewer / operator /
//! admin / no session → allowed, 403 or sign-in (the table is checked
//! against the router's source, so a new route without a rule fails); a
//! member of project A sees and touches nothing of project B; a disabled
//! user's next request is thrown out; invitation links; TOTP sign-in with
//! replay refused and recovery codes used once.

use sendpromptly_core::roles::Role;
use sendpromptly_core::totp;
use sendpromptly_server::console::access::{Need, RULES};
use sendpromptly_server::console::auth::csrf_for;
use sendpromptly_server::provision;
use sendpromptly_server::secrets;
use sendpromptly_server::service::users::{self as user_service, By, Credential};
use sendpromptly_server::store::{Session, User};
use sendpromptly_server::testing::{ApiClient, TestServer};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

struct Page {
    status: u16,
    location: String,
    body: String,
    cookies: Vec<String>,
}

/// A cookie-keeping HTTP client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
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

    fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for cookie in &cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
            cookies,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Signs in through the form; answers the page after the password.
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let login = self.get("/login").await;
        let csrf = hidden(&login.body, "csrf");
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

/// The value of the first hidden field `name`.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {body}"))
        + marker.len();
    body[start..][..body[start..].find('"').unwrap()].to_owned()
}

fn text_of(body: &str, id: &str) -> String {
    let marker = format!(r#"id="{id}">"#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {body}"))
        + marker.len();
    body[start..][..body[start..].find('<').unwrap()].to_owned()
}

/// A session made in the store for `user`: (cookie token, its CSRF token).
async fn session_for(server: &TestServer, user: &User) -> (String, String) {
    let token = secrets::new_proof_token();
    let now = server.clock_now();
    server
        .store()
        .create_session(Session {
            token_hash: secrets::hash_token(&token),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now.plus_seconds(3600),
            pending_2fa: false,
        })
        .await
        .unwrap();
    let csrf = csrf_for(&token);
    (token, csrf)
}

async fn member(server: &TestServer, project_id: &str, email: &str, role: Role) -> User {
    user_service::create(
        server.store(),
        By::Cli,
        project_id,
        email,
        role,
        Credential::Password(PASSWORD.into()),
        server.clock_now(),
    )
    .await
    .expect("member");
    server.store().user_by_email(email).await.unwrap().unwrap()
}

async fn failed_incident(api: &ApiClient, event_id: &str) -> String {
    let receipt = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid",
                   "subject": "cus_1", "effect": "credits.add"}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    let result = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "boom"}),
        )
        .await;
    result.json["incident"]["id"].as_str().unwrap().to_owned()
}

/// The protected routes the console router declares, read from its source.
fn routes_in_router() -> Vec<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/mod.rs"))
            .unwrap();
    let start = source.find("let protected = Router::new()").unwrap();
    let end = start + source[start..].find(".layer(").unwrap();
    let block: String = source[start..end].split_whitespace().collect();
    let mut routes = Vec::new();
    for part in block.split(".route(").skip(1) {
        let path = part.split('"').nth(1).unwrap().to_owned();
        let handlers = &part[path.len() + 2..];
        for (marker, method) in [("get(", "GET"), ("post(", "POST")] {
            if handlers.starts_with(&format!(",{marker}"))
                || handlers.contains(&format!(".{marker}"))
            {
                routes.push((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_console_route_has_an_access_rule_and_every_rule_a_route() {
    let mut routes = routes_in_router();
    routes.sort();
    let mut rules: Vec<(String, String)> = RULES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    rules.sort();
    assert!(
        routes.len() > 30,
        "the router's routes were read: {routes:?}"
    );
    assert_eq!(
        routes, rules,
        "console/access.rs RULES must list exactly the router's protected routes"
    );
}

/// Every rule × every role: allowed (the handler answered, whatever it
/// said), 403 with the role named, or sign-in first.
#[tokio::test]
async fn every_route_times_every_role() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    let mut users = Vec::new();
    for role in Role::ALL {
        users.push((
            role,
            member(&server, &project, &format!("{role}@example.com"), role).await,
        ));
    }
    let mut failures = Vec::new();
    for (method, path, need) in RULES {
        let concrete = path
            .replace("{id}", "x_missing")
            .replace("{link}", "pl_missing")
            .replace("{provider}", "stripe")
            .replace("{event_id}", "evt_missing");
        // No session: sign in first.
        let mut anonymous = Browser::new(&server);
        let page = if *method == "GET" {
            anonymous.get(&concrete).await
        } else {
            anonymous.post(&concrete, &[("csrf", "x")]).await
        };
        if page.status != 303 || !page.location.starts_with("/login") {
            failures.push(format!(
                "{method} {path} without a session: {} {}",
                page.status, page.location
            ));
        }
        for (role, user) in &users {
            let allowed = match need {
                Need::Session => true,
                Need::Role(needed) => role.allows(*needed),
            };
            // A fresh session each time (sign-out, disabling act on it).
            let (token, csrf) = session_for(&server, user).await;
            let mut browser = Browser::new(&server);
            browser.set("sp_session", &token);
            let page = if *method == "GET" {
                browser.get(&concrete).await
            } else {
                browser.post(&concrete, &[("csrf", &csrf)]).await
            };
            let refused = page.status == 403 && page.body.contains("Not allowed");
            // Sign-out answers with the sign-in page and ends the session.
            let signed_out =
                *path == "/logout" && page.cookies.iter().any(|c| c.starts_with("sp_session=;"));
            let to_sign_in =
                page.status == 303 && page.location.starts_with("/login") && !signed_out;
            if allowed && (refused || to_sign_in) {
                failures.push(format!(
                    "{method} {path} as {role}: refused ({})",
                    page.status
                ));
            }
            if !allowed && !refused {
                failures.push(format!(
                    "{method} {path} as {role}: not refused ({} {})",
                    page.status, page.location
                ));
            }
            if refused {
                let needed = match need {
                    Need::Role(needed) => needed.as_str(),
                    Need::Session => "",
                };
                assert!(
                    page.body.contains(&format!("needs the {needed} role")),
                    "{}",
                    page.body
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A member of project A only: project B's pages, objects, forms and
/// `?project=` are all out of reach.
#[tokio::test]
async fn a_member_of_project_a_sees_and_touches_nothing_of_project_b() {
    let server = TestServer::start().await;
    let a = server.project.project_id.clone();
    let b = provision::create_project(server.store(), "secret-b", None, server.clock_now())
        .await
        .unwrap();
    let api_b = ApiClient::new(&server.url(), &b.api_key);
    let incident_b = failed_incident(&api_b, "evt_b_only").await;
    let incident_a = failed_incident(&server.api(), "evt_a_only").await;
    let alice = member(&server, &a, "alice@example.com", Role::Admin).await;
    member(&server, &b.project_id, "bob@example.com", Role::Admin).await;
    let bob = server
        .store()
        .user_by_email("bob@example.com")
        .await
        .unwrap()
        .unwrap();

    let mut browser = Browser::new(&server);
    let signed_in = browser.sign_in("alice@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let overview = browser.get("/").await;
    assert_eq!(overview.status, 200);
    assert!(
        !overview.body.contains("secret-b"),
        "the switcher lists only A"
    );
    let csrf = hidden(&overview.body, "csrf");

    let list = browser.get("/incidents").await;
    assert!(list.body.contains(&incident_a) && !list.body.contains(&incident_b));
    assert_eq!(
        browser
            .get(&format!("/incidents/{incident_b}"))
            .await
            .status,
        404
    );
    assert_eq!(browser.get("/events/stripe/evt_b_only").await.status, 404);
    let asked = browser
        .get(&format!("/incidents/{incident_b}?project={}", b.project_id))
        .await;
    assert_eq!(asked.status, 403);
    assert!(
        asked.body.contains("not a member of that project"),
        "{}",
        asked.body
    );
    let users = browser.get("/users").await;
    assert!(users.body.contains("alice@example.com") && !users.body.contains("bob@example.com"));

    // Crafted forms aimed at B: refused, and nothing happened in B.
    for (path, form) in [
        (
            format!("/incidents/{incident_b}/proof-links"),
            vec![("csrf", csrf.as_str()), ("expires_in_seconds", "3600")],
        ),
        (
            format!("/incidents/{incident_b}/resolve"),
            vec![("csrf", csrf.as_str()), ("note", "closing B from A")],
        ),
        (
            format!(
                "/incidents/{incident_b}/proof-links?project={}",
                b.project_id
            ),
            vec![("csrf", csrf.as_str()), ("expires_in_seconds", "3600")],
        ),
        (
            format!("/settings/general?project={}", b.project_id),
            vec![
                ("csrf", csrf.as_str()),
                ("repair_url", "https://evil.example/"),
                ("default_deadline_seconds", "60"),
            ],
        ),
    ] {
        let page = browser.post(&path, &form).await;
        assert!(
            matches!(page.status, 403 | 404),
            "{path}: {} {}",
            page.status,
            page.body
        );
    }
    let switched = browser
        .post(
            "/switch-project",
            &[("csrf", &csrf), ("project_id", &b.project_id)],
        )
        .await;
    assert_eq!(switched.status, 404, "{}", switched.body);
    // A forged project cookie is ignored: the pages stay A's.
    browser.set("sp_project", &b.project_id);
    let list = browser.get("/incidents").await;
    assert!(list.body.contains(&incident_a) && !list.body.contains(&incident_b));
    let disable_bob = browser
        .post(&format!("/users/{}/disable", bob.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(disable_bob.status, 403, "{}", disable_bob.body);
    let bob_after = server.store().user_by_id(&bob.id).await.unwrap().unwrap();
    assert!(bob_after.disabled_at.is_none());
    let incident = api_b.get(&format!("/v1/incidents/{incident_b}")).await;
    assert_eq!(
        incident.json["incident"]["state"], "open",
        "{}",
        incident.text
    );
    let project_b = api_b.get("/v1/project").await;
    assert!(project_b.json["repair_url"].is_null(), "{}", project_b.text);
    let _ = alice;
}

/// Disabling a user ends their session at once; an admin does it from the
/// Users page in another session.
#[tokio::test]
async fn a_disabled_user_is_thrown_out_on_the_next_request() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    member(&server, &project, "boss@example.com", Role::Admin).await;
    let victim = member(&server, &project, "vic@example.com", Role::Operator).await;

    let mut victim_browser = Browser::new(&server);
    assert_eq!(
        victim_browser
            .sign_in("vic@example.com", PASSWORD)
            .await
            .status,
        303
    );
    assert_eq!(victim_browser.get("/incidents").await.status, 200);

    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let users = boss.get("/users").await;
    let csrf = hidden(&users.body, "csrf");
    let disabled = boss
        .post(&format!("/users/{}/disable", victim.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(disabled.body.contains("Disabled vic@example.com"));

    let next = victim_browser.get("/incidents").await;
    assert_eq!(next.status, 303);
    assert!(next.location.starts_with("/login"), "{}", next.location);
    let again = victim_browser.sign_in("vic@example.com", PASSWORD).await;
    assert_eq!(again.status, 403);
    assert!(again.body.contains("This account is disabled"));

    let enabled = boss
        .post(&format!("/users/{}/enable", victim.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(
        victim_browser
            .sign_in("vic@example.com", PASSWORD)
            .await
            .status,
        303
    );
}

/// An invitation from the Users page: the link sets a password once, then
/// the invitee signs in with the role given.
#[tokio::test]
async fn an_invitation_link_sets_a_password_once() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    member(&server, &project, "boss@example.com", Role::Admin).await;
    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let csrf = hidden(&boss.get("/users").await.body, "csrf");
    let invited = boss
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "new@example.com"),
                ("role", "viewer"),
                ("mode", "invite"),
            ],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    let link = text_of(&invited.body, "one-time-link");
    let path = link.trim_start_matches(&server.url()).to_owned();
    assert!(path.starts_with("/account/setup/"), "{link}");

    let mut invitee = Browser::new(&server);
    assert_eq!(
        invitee
            .sign_in("new@example.com", "anything-at-all")
            .await
            .status,
        401
    );
    let form = invitee.get(&path).await;
    let setup_csrf = hidden(&form.body, "csrf");
    let short = invitee
        .post(
            &path,
            &[
                ("csrf", &setup_csrf),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(
        short.body.contains("at least 10 characters"),
        "{}",
        short.body
    );
    let setup_csrf = hidden(&short.body, "csrf");
    let set = invitee
        .post(
            &path,
            &[
                ("csrf", &setup_csrf),
                ("password", "a fine new password"),
                ("confirm", "a fine new password"),
            ],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password is set"));
    let form = invitee.get(&path).await;
    let setup_csrf = hidden(&form.body, "csrf");
    let reused = invitee
        .post(
            &path,
            &[
                ("csrf", &setup_csrf),
                ("password", "another password!"),
                ("confirm", "another password!"),
            ],
        )
        .await;
    assert_eq!(reused.status, 409, "{}", reused.body);
    assert!(reused.body.contains("used already or has expired"));

    assert_eq!(
        invitee
            .sign_in("new@example.com", "a fine new password")
            .await
            .status,
        303
    );
    assert_eq!(invitee.get("/incidents").await.status, 200);
    let settings = invitee.get("/settings").await;
    assert_eq!(settings.status, 403);
    assert!(settings.body.contains("needs the admin role"));
}

/// TOTP over HTTP: enrol from the page's secret, sign in with a code, a
/// replayed code is refused, a recovery code works once, and a project
/// that requires 2FA sends members without it to enrol.
#[tokio::test]
async fn totp_enrolment_sign_in_replay_and_recovery_codes() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    member(&server, &project, "two@example.com", Role::Viewer).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("two@example.com", PASSWORD).await;
    let enrol = browser.get("/account/2fa").await;
    assert_eq!(enrol.status, 200);
    assert!(enrol.body.contains("<svg"), "an inline SVG QR code");
    let secret = totp::base32_decode(&text_of(&enrol.body, "totp-secret")).unwrap();
    let csrf = hidden(&enrol.body, "csrf");
    let wrong = browser
        .post(
            "/account/2fa/confirm",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let unix = server.clock_now().to_datetime().timestamp();
    let code = totp::code_at_step(&secret, totp::step_at(unix));
    let confirmed = browser
        .post("/account/2fa/confirm", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes_start = confirmed.body.find(r#"id="recovery-codes">"#).unwrap();
    let recovery: Vec<String> = confirmed.body[codes_start..]
        .split("<li>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let stored = server
        .store()
        .user_by_email("two@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.totp_enabled);

    // Sign out; the password alone is not a session.
    browser.post("/logout", &[("csrf", &csrf)]).await;
    let after_password = browser.sign_in("two@example.com", PASSWORD).await;
    assert_eq!(after_password.status, 303);
    assert!(
        after_password.location.starts_with("/login/2fa"),
        "{}",
        after_password.location
    );
    assert!(
        !after_password
            .cookies
            .iter()
            .any(|c| c.starts_with("sp_session=") && !c.starts_with("sp_session=;"))
    );
    assert_eq!(
        browser.get("/").await.status,
        303,
        "no page before the code"
    );
    let step_page = browser.get(&after_password.location).await;
    let step_csrf = hidden(&step_page.body, "csrf");
    // The code used to confirm is spent: a replay in the same window is refused.
    let replay = browser
        .post(
            "/login/2fa",
            &[("csrf", &step_csrf), ("code", &code), ("next", "/")],
        )
        .await;
    assert_eq!(replay.status, 422, "{}", replay.body);
    server.advance(std::time::Duration::from_secs(30));
    let unix = server.clock_now().to_datetime().timestamp();
    let next_code = totp::code_at_step(&secret, totp::step_at(unix));
    let step_csrf = hidden(&replay.body, "csrf");
    let ok = browser
        .post(
            "/login/2fa",
            &[("csrf", &step_csrf), ("code", &next_code), ("next", "/")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(browser.get("/incidents").await.status, 200);

    // A recovery code works once.
    let csrf = hidden(&browser.get("/incidents").await.body, "csrf");
    browser.post("/logout", &[("csrf", &csrf)]).await;
    for (attempt, expected) in [(1, 303), (2, 422)] {
        let step = browser.sign_in("two@example.com", PASSWORD).await;
        let page = browser.get(&step.location).await;
        let step_csrf = hidden(&page.body, "csrf");
        let used = browser
            .post(
                "/login/2fa",
                &[
                    ("csrf", &step_csrf),
                    ("code", &recovery[0].to_lowercase()),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(
            used.status, expected,
            "recovery attempt {attempt}: {}",
            used.body
        );
        if expected == 303 {
            let csrf = hidden(&browser.get("/").await.body, "csrf");
            browser.post("/logout", &[("csrf", &csrf)]).await;
        }
    }
}

#[tokio::test]
async fn a_project_requiring_2fa_sends_members_without_it_to_enrol() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    member(&server, &project, "boss@example.com", Role::Admin).await;
    member(&server, &project, "view@example.com", Role::Viewer).await;
    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let csrf = hidden(&boss.get("/users").await.body, "csrf");
    let saved = boss
        .post(
            "/settings/require-2fa",
            &[("csrf", &csrf), ("require_2fa", "on")],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let mut viewer = Browser::new(&server);
    viewer.sign_in("view@example.com", PASSWORD).await;
    let page = viewer.get("/incidents").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location, "/account/2fa?required=1");
    let enrol = viewer.get(&page.location).await;
    assert!(
        enrol
            .body
            .contains("This project requires two-factor sign-in")
    );
}

/// A database of the release before roles (migrations up to 0008, two
/// users, two projects, a live session) upgrades without losing anything:
/// every user is admin of every project, the oldest is the owner, the
/// session still works.
#[tokio::test]
async fn an_upgraded_database_keeps_its_users_as_admins_of_every_project() {
    use sendpromptly_server::store::Store as _;
    use sendpromptly_server::store::migrations::SQLITE;
    use sendpromptly_server::store::sqlite::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE _sendpromptly_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for migration in SQLITE.iter().filter(|m| m.version < 10) {
        sqlx::raw_sql(migration.sql).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO _sendpromptly_migrations VALUES ($1, $2, 0)")
            .bind(migration.version)
            .bind(migration.name)
            .execute(&pool)
            .await
            .unwrap();
    }
    for (id, name) in [("prj_old_a", "old-a"), ("prj_old_b", "old-b")] {
        sqlx::query("INSERT INTO projects (id, name, default_deadline_seconds, created_at, updated_at) VALUES ($1, $2, 1800, 0, 0)")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
    }
    let hash = secrets::hash_password(PASSWORD).unwrap();
    for (id, email, at) in [
        ("usr_old_1", "first@example.com", 1),
        ("usr_old_2", "second@example.com", 2),
    ] {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(email)
        .bind(&hash)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO console_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, 'usr_old_2', 0, $2)")
        .bind(secrets::hash_token("old-session"))
        .bind(i64::MAX)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let first = store
        .user_by_email("first@example.com")
        .await
        .unwrap()
        .unwrap();
    let second = store
        .user_by_email("second@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(first.owner, "the oldest user is the owner");
    assert!(!second.owner);
    for user in [&first, &second] {
        let mut roles = store.memberships(&user.id).await.unwrap();
        roles.sort();
        assert_eq!(
            roles,
            vec![
                ("prj_old_a".to_owned(), Role::Admin),
                ("prj_old_b".to_owned(), Role::Admin)
            ]
        );
    }
    let session = store
        .session_user(&secrets::hash_token("old-session"), server_now())
        .await
        .unwrap();
    assert_eq!(
        session.map(|u| u.id),
        Some(second.id.clone()),
        "signed-in users stay signed in"
    );
}

fn server_now() -> sendpromptly_core::Timestamp {
    sendpromptly_core::Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap()
}

/// `sendpromptly user …` on a real database: the first user is the owner;
/// invite prints a one-time link; roles, disable, enable, reset, remove,
/// delete; bad input is named.
#[test]
fn the_user_commands_manage_accounts_and_roles() {
    use sendpromptly_server::testing::{cli_ok, run_cli};
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    cli_ok(BIN, &db, &["migrate"]);
    cli_ok(BIN, &db, &["project", "create", "--name", "ops"]);
    cli_ok(BIN, &db, &["project", "create", "--name", "other"]);
    let created = cli_ok(
        BIN,
        &db,
        &[
            "user",
            "create",
            "--email",
            "Owner@Example.com",
            "--password",
            PASSWORD,
        ],
    );
    assert!(
        created.contains("created console user owner@example.com (admin of ops, other)"),
        "{created}"
    );

    let invited = cli_ok(
        BIN,
        &db,
        &[
            "user",
            "invite",
            "--email",
            "bob@example.com",
            "--project",
            "ops",
            "--role",
            "viewer",
            "--public-url",
            "https://console.example.com/",
        ],
    );
    assert!(
        invited.contains("https://console.example.com/account/setup/"),
        "{invited}"
    );

    let list = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["user", "list", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&cli_ok(BIN, &db, &all)).unwrap()
    };
    let users = list(&[]);
    assert_eq!(users[0]["email"], "owner@example.com");
    assert_eq!(users[0]["owner"], true);
    assert_eq!(users[1]["status"], "invited");
    assert_eq!(users[1]["roles"][0][1], "viewer");
    assert_eq!(
        list(&["--project", "other"]).as_array().unwrap().len(),
        1,
        "bob is not in other"
    );

    cli_ok(
        BIN,
        &db,
        &[
            "user",
            "role",
            "--user",
            "bob@example.com",
            "--project",
            "ops",
            "--role",
            "operator",
        ],
    );
    assert_eq!(list(&[])[1]["roles"][0][1], "operator");
    cli_ok(BIN, &db, &["user", "disable", "--user", "bob@example.com"]);
    assert_eq!(list(&[])[1]["status"], "disabled");
    cli_ok(BIN, &db, &["user", "enable", "--user", "bob@example.com"]);
    let reset = cli_ok(
        BIN,
        &db,
        &["user", "reset-password", "--user", "bob@example.com"],
    );
    assert!(
        reset.contains("/account/setup/") && reset.contains("--public-url"),
        "{reset}"
    );
    cli_ok(
        BIN,
        &db,
        &[
            "user",
            "role",
            "--user",
            "bob@example.com",
            "--project",
            "ops",
            "--remove",
        ],
    );
    assert_eq!(list(&[])[1]["roles"].as_array().unwrap().len(), 0);
    let plain = cli_ok(BIN, &db, &["user", "list"]);
    assert!(
        plain.contains("bob@example.com\tinvited\t2fa=off\tno project"),
        "{plain}"
    );

    let bad_role = run_cli(
        BIN,
        &db,
        &[
            "user",
            "role",
            "--user",
            "bob@example.com",
            "--project",
            "ops",
            "--role",
            "boss",
        ],
    );
    assert!(!bad_role.success);
    assert!(
        bad_role.stderr.contains("use viewer, operator or admin"),
        "{}",
        bad_role.stderr
    );
    let nobody = run_cli(
        BIN,
        &db,
        &["user", "disable", "--user", "nobody@example.com"],
    );
    assert!(
        !nobody.success && nobody.stderr.contains("no such user"),
        "{}",
        nobody.stderr
    );
    let weak = run_cli(
        BIN,
        &db,
        &[
            "user",
            "create",
            "--email",
            "c@example.com",
            "--password",
            "short",
        ],
    );
    assert!(
        !weak.success && weak.stderr.contains("at least 10 characters"),
        "{}",
        weak.stderr
    );
    let owner = run_cli(BIN, &db, &["user", "delete", "--user", "owner@example.com"]);
    assert!(
        !owner.success && owner.stderr.contains("disable the account instead"),
        "{}",
        owner.stderr
    );
    cli_ok(BIN, &db, &["user", "delete", "--user", "bob@example.com"]);
    assert_eq!(list(&[]).as_array().unwrap().len(), 1);
}

/// A viewer reads an incident without action buttons; an operator gets them.
#[tokio::test]
async fn a_viewer_reads_incidents_without_action_buttons() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    let incident = failed_incident(&server.api(), "evt_read_only").await;
    for (email, role, buttons) in [
        ("v@example.com", Role::Viewer, false),
        ("o@example.com", Role::Operator, true),
    ] {
        member(&server, &project, email, role).await;
        let mut browser = Browser::new(&server);
        browser.sign_in(email, PASSWORD).await;
        let page = browser.get(&format!("/incidents/{incident}")).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body.contains("/reprocess\""), buttons, "{role}");
        assert_eq!(page.body.contains("id=\"create-proof\""), buttons, "{role}");
        assert_eq!(page.body.contains("id=\"read-only\""), !buttons, "{role}");
        let list = browser.get("/incidents").await;
        assert_eq!(
            list.body.contains("id=\"reprocess-all\""),
            buttons,
            "{role}"
        );
        assert!(
            !list.body.contains("href=\"/settings\""),
            "{role}: no Settings link"
        );
    }
}

/// A minimal SMTP server on loopback that keeps each message's DATA.
async fn smtp_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                    if verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    (port, messages)
}

/// With SMTP configured, an invitation is emailed with its link (and still
/// shown on the page).
#[tokio::test]
async fn an_invitation_is_emailed_when_smtp_is_configured() {
    use sendpromptly_server::config::{ServerConfig, SmtpSettings};
    let (port, messages) = smtp_sink().await;
    let server = TestServer::start_with(ServerConfig {
        smtp: Some(
            SmtpSettings::parse(
                &format!("smtp://127.0.0.1:{port}"),
                "SendPromptly <console@example.com>",
            )
            .unwrap(),
        ),
        ..sendpromptly_server::testing::test_config()
    })
    .await;
    let project = server.project.project_id.clone();
    member(&server, &project, "boss@example.com", Role::Admin).await;
    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let csrf = hidden(&boss.get("/users").await.body, "csrf");
    let invited = boss
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "mailed@example.com"),
                ("role", "operator"),
                ("mode", "invite"),
            ],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    assert!(
        invited.body.contains("The link was emailed to them."),
        "{}",
        invited.body
    );
    let link = text_of(&invited.body, "one-time-link");
    let sent = messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("To: mailed@example.com"), "{}", sent[0]);
    let unfolded = sent[0].replace("=\n", "");
    assert!(
        unfolded.contains(&link),
        "the email carries the link: {}",
        sent[0]
    );
}

/// An alert's link `/incidents/{id}?project=…` to another of the member's
/// projects switches to it and opens the incident.
#[tokio::test]
async fn an_alert_link_switches_to_another_of_the_members_projects() {
    let server = TestServer::start().await;
    let a = server.project.project_id.clone();
    let b = provision::create_project(server.store(), "second", None, server.clock_now())
        .await
        .unwrap();
    let incident_b =
        failed_incident(&ApiClient::new(&server.url(), &b.api_key), "evt_link_b").await;
    member(&server, &a, "both@example.com", Role::Viewer).await;
    member(&server, &b.project_id, "both@example.com", Role::Viewer).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("both@example.com", PASSWORD).await;
    browser.set("sp_project", &a);
    assert_eq!(
        browser
            .get(&format!("/incidents/{incident_b}"))
            .await
            .status,
        404,
        "A is chosen"
    );
    let link = browser
        .get(&format!("/incidents/{incident_b}?project={}", b.project_id))
        .await;
    assert_eq!(link.status, 303, "{}", link.body);
    assert_eq!(link.location, format!("/incidents/{incident_b}"));
    let page = browser.get(&link.location).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&incident_b));
}

/// User and role changes made on the Users page land in the project's
/// audit log with the acting user, the client IP and the user before and
/// after, readable by the API and on the console's Audit log page.
#[tokio::test]
async fn user_and_role_changes_are_in_the_audit_log() {
    let server = TestServer::start().await;
    let project = server.project.project_id.clone();
    member(&server, &project, "boss@example.com", Role::Admin).await;
    let victim = member(&server, &project, "vic@example.com", Role::Viewer).await;

    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let csrf = hidden(&boss.get("/users").await.body, "csrf");
    let promoted = boss
        .post(
            &format!("/users/{}/role", victim.id),
            &[("csrf", &csrf), ("role", "operator")],
        )
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let disabled = boss
        .post(&format!("/users/{}/disable", victim.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let audit_page = boss.get("/audit-log").await;
    assert_eq!(audit_page.status, 200, "{}", audit_page.body);
    assert!(
        audit_page.body.contains("user.disable"),
        "{}",
        audit_page.body
    );
    assert!(audit_page.body.contains("user.role"));
    // Last: from now on the boss (no 2FA yet) is sent to enrolment.
    let required = boss
        .post(
            "/settings/require-2fa",
            &[("csrf", &csrf), ("require_2fa", "on")],
        )
        .await;
    assert_eq!(required.status, 200, "{}", required.body);

    let page = server.api().get("/v1/audit-log?limit=100").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let entries = page.json["data"].as_array().unwrap().clone();
    let entry = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} entry in {entries:#?}"))
            .clone()
    };
    let role = entry("user.role");
    assert_eq!(role["actor"], "user:boss@example.com");
    assert_eq!(role["ip"], "127.0.0.1");
    assert_eq!(role["target"], victim.id.as_str());
    assert_eq!(role["before"]["roles"][0][1], "viewer", "{role:#}");
    assert_eq!(role["after"]["roles"][0][1], "operator", "{role:#}");
    let disable = entry("user.disable");
    assert_eq!(disable["before"]["status"], "active");
    assert_eq!(disable["after"]["status"], "disabled");
    let require = entry("project.require_2fa");
    assert_eq!(require["before"]["require_2fa"], false);
    assert_eq!(require["after"]["require_2fa"], true);
}
