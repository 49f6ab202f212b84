//! The provider tap's storage: provider copies by fingerprint (one change,
//! one event), `missing_receipt` from the sweeper, the tap settings with
//! their sealed secrets and the reconciler's restricted key.

use std::collections::BTreeMap;

use sendpromptly_core::model::{LearnedVia, ProviderCopy};

use super::*;
use crate::store::ProviderTapSettings;

fn copy(event_id: &str, fingerprint: &str) -> ProviderCopy {
    ProviderCopy {
        provider: Provider::Stripe,
        event_id: event_id.to_owned(),
        event_type: "invoice.paid".to_owned(),
        object_id: Some("in_1".to_owned()),
        subject: Some("cus_1".to_owned()),
        amount: Some(1999),
        currency: Some("USD".to_owned()),
        livemode: Some(true),
        created: Some(T0),
        learned_via: LearnedVia::Tap,
        fingerprint: Some(fingerprint.to_owned()),
    }
}

fn expected(copy: ProviderCopy, grace: u32) -> Command {
    Command::Expected {
        copy,
        receipt_grace_seconds: grace,
    }
}

/// The first event to hold a fingerprint keeps it; a copy of another event
/// id with the same fingerprint is refused (`FingerprintTaken`) and stores
/// nothing; the same fingerprint in another project is another change.
pub async fn provider_copies_are_unique_by_fingerprint(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let first = stripe("evt_first");
    let applied = store
        .apply(
            &project.id,
            &first,
            expected(copy("evt_first", "fp1"), 600),
            ctx(at(0)),
        )
        .await
        .expect("the first copy is stored");
    assert_eq!(applied.transition.outcome, Outcome::Created);
    assert_eq!(
        store
            .event_by_fingerprint(&project.id, Provider::Stripe, "fp1")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .event_by_fingerprint(&project.id, Provider::Shopify, "fp1")
            .await
            .unwrap(),
        None
    );

    let second = stripe("evt_second");
    let err = store
        .apply(
            &project.id,
            &second,
            expected(copy("evt_second", "fp1"), 600),
            ctx(at(1)),
        )
        .await
        .expect_err("a second event for the same change is refused");
    assert!(matches!(err, StoreError::FingerprintTaken), "{err:?}");
    assert!(store.event(&project.id, &second).await.unwrap().is_none());

    // The same copy again on the first event is a duplicate, not a conflict.
    let again = store
        .apply(
            &project.id,
            &first,
            expected(copy("evt_first", "fp1"), 600),
            ctx(at(2)),
        )
        .await
        .unwrap();
    assert_eq!(again.transition.outcome, Outcome::Duplicate);

    // Linking: the second id applied to the first event.
    let linked = store
        .apply(
            &project.id,
            &first,
            expected(copy("evt_second", "fp1"), 600),
            ctx(at(3)),
        )
        .await
        .unwrap();
    assert_eq!(linked.transition.outcome, Outcome::Duplicate);
    let stored = store.event(&project.id, &first).await.unwrap().unwrap();
    let kinds: Vec<&str> = stored.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "provider_copy.recorded",
            "provider_copy.duplicate",
            "provider_copy.duplicate"
        ]
    );

    // Another project: another change.
    store
        .apply(
            &other.id,
            &second,
            expected(copy("evt_second", "fp1"), 600),
            ctx(at(4)),
        )
        .await
        .expect("fingerprints are per project");
}

/// A copy whose receipt never comes opens `missing_receipt` on the sweep
/// after its grace; a receipt first then a copy opens nothing.
pub async fn sweep_opens_missing_receipt(store: &dyn Store) {
    let project = new_project(store).await;
    let waiting = stripe("evt_waiting");
    store
        .apply(
            &project.id,
            &waiting,
            expected(copy("evt_waiting", "fpw"), 60),
            ctx(at(0)),
        )
        .await
        .unwrap();
    let received = stripe("evt_received");
    store
        .apply(
            &project.id,
            &received,
            receipt(&received, Some("cus_1")),
            ctx(at(0)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &received,
            expected(copy("evt_received", "fpr"), 60),
            ctx(at(1)),
        )
        .await
        .unwrap();

    let early = store.sweep_due(at(59), 100).await.unwrap();
    assert!(early.transitions.is_empty());
    let report = store.sweep_due(at(61), 100).await.unwrap();
    let opened: Vec<(&str, IncidentKind)> = report
        .transitions
        .iter()
        .filter_map(|(_, t)| {
            let incident = t.record.incident.as_ref()?;
            Some((t.record.event_id.as_str(), incident.kind))
        })
        .collect();
    assert_eq!(opened, [("evt_waiting", IncidentKind::MissingReceipt)]);
    let page = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                kind: Some(IncidentKind::MissingReceipt),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&page), strings(&["evt_waiting"]));
    let stored = store.event(&project.id, &received).await.unwrap().unwrap();
    assert!(stored.record.incident.is_none());
    assert_eq!(stored.record.state, EventState::AwaitingResult);
}

/// Tap settings round-trip with their secrets sealed; the reconciler's
/// restricted key is readable on its own; projects do not share them.
pub async fn provider_tap_settings_round_trip(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    assert!(
        store
            .provider_tap_settings(&project.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.stripe_restricted_key(&project.id).await.unwrap(),
        None
    );
    let settings = ProviderTapSettings {
        tracked_event_types: Some(vec!["invoice.paid".to_owned()]),
        receipt_grace_seconds: 120,
        grace_by_event_type: BTreeMap::from([("invoice.paid".to_owned(), 30)]),
        stripe_endpoint_secrets: vec!["whsec_old".to_owned(), "whsec_new".to_owned()],
        shopify_client_secret: Some("shpss_client".to_owned()),
        stripe_restricted_key: Some("rk_test_abc123".to_owned()),
        updated_at: at(5),
    };
    store
        .put_provider_tap_settings(&project.id, &settings)
        .await
        .unwrap();
    assert_eq!(
        store.provider_tap_settings(&project.id).await.unwrap(),
        Some(settings.clone())
    );
    assert_eq!(
        store.stripe_restricted_key(&project.id).await.unwrap(),
        Some("rk_test_abc123".to_owned())
    );
    assert_eq!(store.stripe_restricted_key(&other.id).await.unwrap(), None);

    let cleared = ProviderTapSettings {
        tracked_event_types: None,
        stripe_endpoint_secrets: Vec::new(),
        shopify_client_secret: None,
        stripe_restricted_key: None,
        ..settings
    };
    store
        .put_provider_tap_settings(&project.id, &cleared)
        .await
        .unwrap();
    assert_eq!(
        store.provider_tap_settings(&project.id).await.unwrap(),
        Some(cleared)
    );
    assert_eq!(
        store.stripe_restricted_key(&project.id).await.unwrap(),
        None
    );

    let missing = store
        .put_provider_tap_settings(
            "prj_missing",
            &ProviderTapSettings {
                tracked_event_types: None,
                receipt_grace_seconds: 600,
                grace_by_event_type: BTreeMap::new(),
                stripe_endpoint_secrets: Vec::new(),
                shopify_client_secret: None,
                stripe_restricted_key: None,
                updated_at: at(0),
            },
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound("project"))),
        "{missing:?}"
    );
}

/// `livemode` filters: test mode is a provider copy with `livemode: false`;
/// events without a copy count as live.
pub async fn livemode_filters(store: &dyn Store) {
    let project = new_project(store).await;
    let mut test_copy = copy("evt_test", "fpt");
    test_copy.livemode = Some(false);
    for (event_id, command) in [
        ("evt_test", expected(test_copy, 60)),
        ("evt_live", expected(copy("evt_live", "fpl"), 60)),
    ] {
        store
            .apply(&project.id, &stripe(event_id), command, ctx(at(0)))
            .await
            .unwrap();
    }
    let plain = stripe("evt_plain");
    store
        .apply(&project.id, &plain, receipt(&plain, None), ctx(at(0)))
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &plain,
            result(&plain, ResultStatus::Failure),
            ctx(at(1)),
        )
        .await
        .unwrap();
    store.sweep_due(at(61), 100).await.unwrap();

    let incidents = |livemode| IncidentFilter {
        livemode,
        ..IncidentFilter::default()
    };
    let project_id = project.id.as_str();
    let list = |filter: IncidentFilter| async move {
        let page = store
            .list_incidents(project_id, &filter, &page(10))
            .await
            .unwrap();
        let mut ids = event_ids(&page);
        ids.sort();
        ids
    };
    assert_eq!(list(incidents(Some(false))).await, strings(&["evt_test"]));
    assert_eq!(
        list(incidents(Some(true))).await,
        strings(&["evt_live", "evt_plain"])
    );
    assert_eq!(list(incidents(None)).await.len(), 3);

    let events = |livemode| EventFilter {
        livemode,
        ..EventFilter::default()
    };
    let test_events = store
        .search_events(&project.id, &events(Some(false)), &page(10))
        .await
        .unwrap();
    assert_eq!(event_ids(&test_events), strings(&["evt_test"]));
    let live_events = store
        .search_events(&project.id, &events(Some(true)), &page(10))
        .await
        .unwrap();
    assert_eq!(event_ids(&live_events), strings(&["evt_plain", "evt_live"]));
}
