//! The happy path of every call, the repair endpoint, and the response types
//! against the server's JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sendpromptly_client::{
    Client, Error, EventFilter, EventState, IncidentFilter, IncidentKind, IncidentState,
    ProjectUpdate, Provider, ReprocessBatchRequest, Resolution, TimelineKind,
    verify_repair_request,
};
use sendpromptly_server::testing::{TestServer, eventually};

use crate::{count_entries, direct, through_proxy};

#[tokio::test]
async fn signals_and_ops_calls_work_end_to_end() {
    let (server, proxy, sp) = through_proxy(crate::quick_retry()).await;

    let first = sp
        .receipt(Provider::Stripe, "evt_happy_1", "invoice.paid")
        .subject("cus_happy")
        .effect("credits.add")
        .deadline_seconds(600)
        .metadata_value("credits", 500)
        .await
        .expect("receipt");
    assert!(first.created());
    assert_eq!(first.meta.status, 201);
    assert_eq!(first.meta.attempts, 1);
    assert!(!first.meta.replayed);
    assert!(
        first
            .meta
            .request_id
            .as_deref()
            .is_some_and(|id| id.starts_with("req_"))
    );
    assert_eq!(first.event.state, EventState::AwaitingResult);
    assert_eq!(first.event.subject.as_deref(), Some("cus_happy"));
    assert_eq!(first.event.metadata.as_ref().unwrap()["credits"], 500);
    let deadline = first.event.deadline_at.unwrap().unix_millis()
        - first.event.received_at.unwrap().unix_millis();
    assert_eq!(deadline, 600_000);

    // A second delivery of the same event is a new logical call: a new key,
    // recorded as a duplicate.
    let again = sp
        .receipt(Provider::Stripe, "evt_happy_1", "invoice.paid")
        .await
        .expect("duplicate receipt");
    assert!(!again.created());
    assert_eq!(again.event.deliveries, 2);
    let keys: Vec<_> = proxy
        .seen()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0]
            .as_deref()
            .is_some_and(|k| k.starts_with("sp_idem_"))
    );
    assert_ne!(keys[0], keys[1]);

    let done = sp
        .success(Provider::Stripe, "evt_happy_1")
        .await
        .expect("success");
    assert_eq!(done.event.state, EventState::Succeeded);

    sp.receipt(Provider::Custom, "job/7 with spaces", "export.run")
        .subject("acct_happy")
        .await
        .expect("receipt with an awkward id");
    let failed = sp
        .failure(Provider::Custom, "job/7 with spaces", "disk full")
        .await
        .expect("failure");
    let incident = failed.incident.expect("a failure opens an incident");
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.state, IncidentState::Open);

    let detail = sp
        .get_event(Provider::Custom, "job/7 with spaces")
        .await
        .expect("get event");
    assert_eq!(detail.event.state, EventState::Failed);
    assert!(
        detail
            .timeline
            .iter()
            .any(|e| e.kind == TimelineKind::ResultFailure)
    );

    let found = sp
        .search_events(&EventFilter {
            subject: Some("cus_happy".into()),
            ..EventFilter::default()
        })
        .await
        .expect("search");
    assert_eq!(found.data.len(), 1);
    assert_eq!(found.data[0].event_id, "evt_happy_1");

    let open = sp
        .list_incidents(&IncidentFilter {
            state: Some(IncidentState::Open),
            limit: Some(10),
            ..IncidentFilter::default()
        })
        .await
        .expect("list incidents");
    assert_eq!(open.data.len(), 1);
    assert_eq!(open.data[0].id, incident.id);
    let one = sp.get_incident(&incident.id).await.expect("get incident");
    assert_eq!(one.event.event_id, "job/7 with spaces");

    let link = sp
        .create_proof_link(&incident.id, Some(Duration::from_secs(3600)))
        .await
        .expect("proof link");
    assert!(link.id.starts_with("prf_"));
    let page = reqwest::get(&link.url).await.expect("proof page");
    assert_eq!(page.status(), 200);
    let links = sp.list_proof_links(&incident.id).await.expect("list links");
    assert_eq!(links.len(), 1);
    sp.revoke_proof_link(&link.id).await.expect("revoke");
    assert_eq!(reqwest::get(&link.url).await.unwrap().status(), 404);

    let project = sp
        .update_project(&ProjectUpdate {
            default_deadline_seconds: Some(900),
            ..ProjectUpdate::default()
        })
        .await
        .expect("update project");
    assert_eq!(project.default_deadline_seconds, 900);
    assert_eq!(sp.project().await.unwrap().default_deadline_seconds, 900);
    let rotated = sp.rotate_signing_secret().await.expect("rotate");
    assert!(rotated.secret.starts_with("whsec_"));

    let resolved = sp
        .resolve(&incident.id, "fixed the disk by hand")
        .await
        .expect("resolve");
    assert_eq!(resolved.incident.state, IncidentState::Resolved);
    assert_eq!(
        resolved.incident.resolution,
        Some(Resolution::Manual.into())
    );

    assert_eq!(sp.health().await.expect("health").status, "ok");
    drop(server);
}

#[tokio::test]
async fn api_errors_carry_status_type_param_and_request_id() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let err = sp
        .list_incidents(&IncidentFilter {
            limit: Some(1000),
            ..IncidentFilter::default()
        })
        .await
        .unwrap_err();
    let Error::Api(api) = &err else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(api.status, 422);
    assert_eq!(api.kind, "validation_error");
    assert_eq!(api.param.as_deref(), Some("limit"));
    assert!(
        api.request_id
            .as_deref()
            .is_some_and(|id| id.starts_with("req_")),
        "{api:?}"
    );
    assert!(!err.is_retryable());

    let err = sp.get_incident("inc_doesnotexist").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.kind(), "not_found");
}

#[tokio::test]
async fn response_types_read_every_field_the_server_sends() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    sp.receipt(Provider::Stripe, "evt_shape", "invoice.paid")
        .subject("cus_shape")
        .metadata_value("k", "v")
        .await
        .unwrap();
    let failed = sp
        .failure(Provider::Stripe, "evt_shape", "nope")
        .await
        .unwrap();
    let incident_id = failed.incident.unwrap().id;
    let raw = server.api();

    let typed =
        serde_json::to_value(sp.get_event(Provider::Stripe, "evt_shape").await.unwrap()).unwrap();
    assert_eq!(typed, raw.get("/v1/events/stripe/evt_shape").await.json);
    let typed = serde_json::to_value(sp.get_incident(&incident_id).await.unwrap()).unwrap();
    assert_eq!(
        typed,
        raw.get(&format!("/v1/incidents/{incident_id}")).await.json
    );
    let typed =
        serde_json::to_value(sp.list_incidents(&IncidentFilter::default()).await.unwrap()).unwrap();
    assert_eq!(typed, raw.get("/v1/incidents").await.json);
    let typed = serde_json::to_value(sp.project().await.unwrap()).unwrap();
    assert_eq!(typed, raw.get("/v1/project").await.json);
}

#[derive(Clone)]
struct RepairApp {
    sp: Client,
    secrets: Vec<String>,
    rejected: Arc<std::sync::atomic::AtomicUsize>,
}

async fn repair_endpoint(
    State(app): State<RepairApp>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let callback = match verify_repair_request(&body, &headers, &app.secrets) {
        Ok(callback) => callback,
        Err(_) => {
            app.rejected
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return StatusCode::BAD_REQUEST;
        }
    };
    match app.sp.success_for(&callback).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::test]
async fn a_repair_endpoint_verifies_the_callback_and_resolves_the_incident() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let app = RepairApp {
        sp: sp.clone(),
        secrets: vec![server.project.signing_secret.clone()],
        rejected: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/repair", axum::routing::post(repair_endpoint))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let repair_url = format!("http://{}/repair", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    sp.update_project(&ProjectUpdate {
        repair_url: Some(Some(repair_url.clone())),
        ..ProjectUpdate::default()
    })
    .await
    .unwrap();

    sp.receipt(Provider::Stripe, "evt_repair", "invoice.paid")
        .await
        .unwrap();
    let failed = sp
        .failure(Provider::Stripe, "evt_repair", "tenant missing")
        .await
        .unwrap();
    let incident_id = failed.incident.unwrap().id;
    let requested = sp
        .reprocess(&incident_id, Some("tenant restored"))
        .await
        .unwrap();
    assert!(requested.reprocess_id.starts_with("rep_"));
    assert_eq!(requested.incident.state, IncidentState::Reprocessing);

    let detail = eventually(
        Duration::from_secs(20),
        "the incident resolved by the repair",
        || {
            let sp = sp.clone();
            let id = incident_id.clone();
            async move {
                let detail = sp.get_incident(&id).await.ok()?;
                (detail.incident.state == IncidentState::Resolved).then_some(detail)
            }
        },
    )
    .await;
    assert_eq!(
        detail.incident.resolution,
        Some(Resolution::SuccessResult.into())
    );
    let last = detail.event.last_result.expect("a result");
    assert_eq!(
        last.reprocess_id.as_deref(),
        Some(requested.reprocess_id.as_str())
    );
    assert_eq!(app.rejected.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        count_entries(
            &server,
            Provider::Stripe,
            "evt_repair",
            TimelineKind::ResultSuccess
        )
        .await,
        1
    );

    // A request not signed with the project's secret is rejected by the endpoint.
    let forged = reqwest::Client::new()
        .post(&repair_url)
        .header("webhook-id", requested.reprocess_id.as_str())
        .header(
            "webhook-timestamp",
            sendpromptly_client::now().unix_seconds().to_string(),
        )
        .header(
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .body(r#"{"type":"reprocess.requested"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(app.rejected.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reprocess_batch_is_planned_started_followed_and_resolves_incidents() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let app = RepairApp {
        sp: sp.clone(),
        secrets: vec![server.project.signing_secret.clone()],
        rejected: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/repair", axum::routing::post(repair_endpoint))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let repair_url = format!("http://{}/repair", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    sp.update_project(&ProjectUpdate {
        repair_url: Some(Some(repair_url)),
        ..ProjectUpdate::default()
    })
    .await
    .unwrap();
    for i in 0..4 {
        let event_id = format!("evt_batch_{i}");
        sp.receipt(Provider::Stripe, &event_id, "invoice.paid")
            .await
            .unwrap();
        sp.failure(Provider::Stripe, &event_id, "workers down")
            .await
            .unwrap();
    }
    let request = ReprocessBatchRequest {
        event_type: Some("invoice.paid".into()),
        rate_per_second: Some(20.0),
        ..ReprocessBatchRequest::default()
    };
    let plan = sp.plan_reprocess_batch(&request).await.unwrap();
    assert!(plan.dry_run);
    assert_eq!((plan.total, plan.to_send, plan.skipped), (4, 4, 0));
    assert_eq!(plan.by_event_type["invoice.paid"], 4);

    let started = sp.start_reprocess_batch(&request).await.unwrap();
    assert!(started.id.starts_with("rpb_"));
    assert_eq!(started.state, "running");
    assert_eq!(started.counts.total, 4);

    let done = eventually(Duration::from_secs(20), "every incident resolved", || {
        let sp = sp.clone();
        let id = started.id.clone();
        server.advance(Duration::from_millis(100));
        async move {
            let batch = sp.reprocess_batch(&id).await.ok()?;
            (batch.counts.resolved == 4 && batch.state == "completed").then_some(batch)
        }
    })
    .await;
    // The endpoint reports success before answering, so each incident is
    // resolved while its callback is still being delivered.
    assert_eq!((done.counts.sent, done.counts.in_flight), (4, 0));
    assert_eq!(done.counts.failed, 0);
    assert!(done.items.iter().all(|item| item.state == "resolved"));
    assert_eq!(app.rejected.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Cancelling a finished batch changes nothing; an unknown one is a 404.
    let after = sp.cancel_reprocess_batch(&started.id).await.unwrap();
    assert_eq!(after.state, "completed");
    let missing = sp.reprocess_batch("rpb_unknown").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}
