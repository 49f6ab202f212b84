//! Projects, API keys, signing secrets, retention and console users.

use super::*;

/// `migrate` can run again on a migrated database, and `ping` answers.
pub async fn migrate_is_repeatable(store: &dyn Store) {
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
}

/// Projects: create, unique names, look-ups, listing and patches.
pub async fn projects(store: &dyn Store) {
    let project = new_project(store).await;
    assert_eq!(project.default_deadline_seconds, 1800);
    assert!(project.deadlines_by_event_type.is_empty());
    assert!(!project.proof_show_metadata);

    let same_name = store
        .create_project(NewProject {
            id: new_id(ids::PROJECT, T0),
            name: project.name.clone(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: T0,
        })
        .await;
    assert!(
        matches!(same_name, Err(StoreError::Conflict(_))),
        "{same_name:?}"
    );

    assert_eq!(
        store.project(&project.id).await.unwrap().as_ref(),
        Some(&project)
    );
    assert_eq!(
        store.project_by_name(&project.name).await.unwrap().as_ref(),
        Some(&project)
    );
    assert_eq!(store.project("prj_nope").await.unwrap(), None);
    assert_eq!(store.project_by_name("no such name").await.unwrap(), None);

    let second = new_project(store).await;
    let listed: Vec<String> = store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(listed.contains(&project.id) && listed.contains(&second.id));

    let table = BTreeMap::from([("invoice.paid".to_owned(), 60_u32)]);
    let channels = serde_json::json!([{"type": "email", "to": "ops@example.com"}]);
    let updated = store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(None),
                default_deadline_seconds: Some(900),
                deadlines_by_event_type: Some(table.clone()),
                alert_channels: Some(channels.clone()),
                proof_show_metadata: Some(true),
                trace_url_template: Some(Some("https://jaeger.local/trace/{trace_id}".to_owned())),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.repair_url, None);
    assert_eq!(
        updated.trace_url_template.as_deref(),
        Some("https://jaeger.local/trace/{trace_id}")
    );
    assert_eq!(updated.default_deadline_seconds, 900);
    assert_eq!(updated.deadlines_by_event_type, table);
    assert_eq!(updated.alert_channels, channels);
    assert!(updated.proof_show_metadata);
    assert_eq!(updated.deadline_for("invoice.paid", None), 60);
    assert_eq!(
        store.project(&project.id).await.unwrap().as_ref(),
        Some(&updated)
    );

    let unchanged = store
        .update_project(&project.id, ProjectPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged, updated);
    let set_again = store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(Some("https://new.example/repair".to_owned())),
                ..ProjectPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        set_again.repair_url.as_deref(),
        Some("https://new.example/repair")
    );
    assert_eq!(set_again.default_deadline_seconds, 900);

    let missing = store
        .update_project("prj_nope", ProjectPatch::default())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // The other project was not touched.
    assert_eq!(
        store
            .project(&second.id)
            .await
            .unwrap()
            .unwrap()
            .default_deadline_seconds,
        1800
    );
}

/// API keys: look-up by hash, newest-first listing, revocation, unique hashes.
pub async fn api_keys(store: &dyn Store) {
    let project = new_project(store).await;
    let first = api_key(&project, 1, at(0));
    let second = api_key(&project, 2, at(10));
    store.insert_api_key(first.clone()).await.unwrap();
    store.insert_api_key(second.clone()).await.unwrap();

    assert_eq!(
        store.api_key_by_hash(&[1; 32]).await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(store.api_key_by_hash(&[9; 32]).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys(&project.id).await.unwrap(),
        vec![second.clone(), first.clone()]
    );

    let duplicate = store
        .insert_api_key(ApiKey {
            id: new_id(ids::API_KEY, at(20)),
            ..first.clone()
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    assert!(
        store
            .revoke_api_key(&project.id, &first.id, at(30))
            .await
            .unwrap()
    );
    let revoked = store.api_key_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(30)));
    assert!(
        !store
            .revoke_api_key(&project.id, "key_nope", at(30))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_key_by_hash(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// `apply_with_key`: a write made with an unrevoked key of the project is
/// stored (also many at once, sharing group commits); one made with an
/// unknown key, another project's key or a revoked key is refused with
/// `KeyRevoked` and leaves nothing behind.
pub async fn apply_with_key_checks_the_key_in_the_write(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let key = api_key(&project, 77, at(0));
    let others_key = api_key(&other, 78, at(0));
    store.insert_api_key(key.clone()).await.unwrap();
    store.insert_api_key(others_key.clone()).await.unwrap();
    let project_id = project.id.as_str();
    let key_id = key.id.as_str();

    let keys: Vec<EventKey> = (0..16)
        .map(|i| stripe(&unique(&format!("evt_key_{i}"))))
        .collect();
    let tasks: Vec<BoxedTask<'_, StoreResult<Applied>>> = keys
        .iter()
        .map(|k| {
            Box::pin(async move {
                store
                    .apply_with_key(project_id, key_id, k, receipt(k, None), ctx(at(1)))
                    .await
            }) as BoxedTask<'_, _>
        })
        .collect();
    for (k, answer) in keys.iter().zip(run_in_parallel(tasks)) {
        let applied = answer.unwrap_or_else(|e| panic!("{}: {e}", k.event_id));
        assert_eq!(applied.transition.outcome, Outcome::Created);
    }

    let unknown = stripe(&unique("evt_key_unknown"));
    for (who, id) in [
        ("unknown", "key_nope"),
        ("other project's", others_key.id.as_str()),
    ] {
        let refused = store
            .apply_with_key(
                project_id,
                id,
                &unknown,
                receipt(&unknown, None),
                ctx(at(2)),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::KeyRevoked)),
            "{who} key: {refused:?}"
        );
    }
    assert!(store.event(project_id, &unknown).await.unwrap().is_none());

    assert!(
        store
            .revoke_api_key(project_id, key_id, at(3))
            .await
            .unwrap()
    );
    let refused = store
        .apply_with_key(
            project_id,
            key_id,
            &keys[0],
            result(&keys[0], ResultStatus::Success),
            ctx(at(4)),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::KeyRevoked)),
        "{refused:?}"
    );
    let stored = store.event(project_id, &keys[0]).await.unwrap().unwrap();
    assert_eq!(stored.record.state, EventState::AwaitingResult);
    assert_eq!(stored.timeline.len(), 1, "nothing of the refused write");
}

/// Rotation: older secrets expire at the given time and then stop being listed.
pub async fn signing_secret_rotation(store: &dyn Store) {
    let project = new_project(store).await;
    let hour = 3600;
    store
        .add_signing_secret(&project.id, "whsec_one", at(0), at(24 * hour))
        .await
        .unwrap();
    let secrets = store.signing_secrets(&project.id, at(0)).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].secret, "whsec_one");
    assert_eq!(secrets[0].expires_at, None);

    store
        .add_signing_secret(&project.id, "whsec_two", at(hour), at(25 * hour))
        .await
        .unwrap();
    let secrets = store.signing_secrets(&project.id, at(hour)).await.unwrap();
    let names: Vec<&str> = secrets.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_two", "whsec_one"], "newest first");
    assert_eq!(secrets[0].expires_at, None);
    assert_eq!(secrets[1].expires_at, Some(at(25 * hour)));
    assert_eq!(secrets[0].created_at, at(hour));

    store
        .add_signing_secret(&project.id, "whsec_three", at(2 * hour), at(26 * hour))
        .await
        .unwrap();
    let secrets = store
        .signing_secrets(&project.id, at(2 * hour))
        .await
        .unwrap();
    let expiries: Vec<(&str, Option<Timestamp>)> = secrets
        .iter()
        .map(|s| (s.secret.as_str(), s.expires_at))
        .collect();
    assert_eq!(
        expiries,
        vec![
            ("whsec_three", None),
            ("whsec_two", Some(at(26 * hour))),
            ("whsec_one", Some(at(25 * hour))),
        ],
        "an already expiring secret keeps its expiry"
    );

    let later = store
        .signing_secrets(&project.id, at(25 * hour))
        .await
        .unwrap();
    let names: Vec<&str> = later.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_three", "whsec_two"]);
    let much_later = store
        .signing_secrets(&project.id, at(30 * hour))
        .await
        .unwrap();
    let names: Vec<&str> = much_later.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_three"]);
}

/// Signing secrets and stored idempotent responses are sealed at rest: the
/// column holds `spenc1:` ciphertext under the current key, never the
/// secret, and reads give the plaintext back.
pub async fn secrets_are_encrypted_at_rest(store: &dyn Store) {
    let project = new_project(store).await;
    let secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw";
    store
        .add_signing_secret(&project.id, secret, at(0), at(3600))
        .await
        .unwrap();
    let stored = store.stored_signing_secrets(&project.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    let keyring = test_keyring();
    for value in &stored {
        assert!(value.starts_with(crate::secrets::SEALED_PREFIX), "{value}");
        assert!(
            !value.contains("whsec_"),
            "plaintext in the column: {value}"
        );
        assert!(
            !value.contains("c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw"),
            "{value}"
        );
        assert_eq!(
            crate::secrets::Keyring::key_id_of(value).unwrap(),
            keyring.current_id(),
            "sealed under the configured key"
        );
    }
    let read = store.signing_secrets(&project.id, at(1)).await.unwrap();
    assert_eq!(read[0].secret, secret);
    // Already sealed with the current key: a start-up reseal changes nothing.
    assert_eq!(
        store.reseal_signing_secrets().await.unwrap(),
        ResealReport::default()
    );
    assert_eq!(
        store.stored_signing_secrets(&project.id).await.unwrap(),
        stored
    );

    // A rotate response replayed from an idempotency key holds the new secret.
    let body = format!(r#"{{"secret":"{secret}"}}"#);
    let p = project.id.as_str();
    let lock = Duration::from_secs(30);
    assert_eq!(
        store
            .idempotency_begin(p, "rotate-1", b"hash", at(2), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    store
        .idempotency_complete(p, "rotate-1", 201, body.as_bytes())
        .await
        .unwrap();
    let raw = store
        .stored_idempotency_response(p, "rotate-1")
        .await
        .unwrap()
        .expect("stored");
    let raw = String::from_utf8(raw).expect("sealed text");
    assert!(raw.starts_with(crate::secrets::SEALED_PREFIX), "{raw}");
    assert!(!raw.contains("whsec_"), "plaintext in the column: {raw}");
    assert_eq!(
        store
            .idempotency_begin(p, "rotate-1", b"hash", at(3), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: body.into_bytes()
        }
    );
}

/// Retention of resolved history: old resolved incidents (with their proof
/// links and outbox rows) and old successes go; open and reprocessing
/// incidents, events awaiting a result and recent resolutions stay.
pub async fn resolved_history_retention(store: &dyn Store) {
    let project = new_project(store).await;
    let p = project.id.as_str();
    // Resolved at 12 s, after a reprocess (its callback cancelled) and with a proof link.
    let resolved = key(Provider::Stripe, "evt_resolved");
    let resolved_incident =
        failed_event(store, &project, &resolved, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &resolved_incident, at(11)).await;
    store
        .apply(
            p,
            &resolved,
            result(&resolved, ResultStatus::Success),
            ctx(at(12)),
        )
        .await
        .unwrap();
    store
        .create_proof_link(proof_link(&project, &resolved_incident, 41, at(12)))
        .await
        .unwrap();
    // A success without an incident.
    let succeeded = key(Provider::Stripe, "evt_succeeded");
    store
        .apply(p, &succeeded, receipt(&succeeded, None), ctx(at(10)))
        .await
        .unwrap();
    store
        .apply(
            p,
            &succeeded,
            result(&succeeded, ResultStatus::Success),
            ctx(at(10)),
        )
        .await
        .unwrap();
    // Open, reprocessing, awaiting a result: all old, all kept.
    let open = key(Provider::Stripe, "evt_open");
    let open_incident = failed_event(store, &project, &open, "invoice.paid", None, at(10)).await;
    store
        .create_proof_link(proof_link(&project, &open_incident, 42, at(10)))
        .await
        .unwrap();
    let reprocessing = key(Provider::Stripe, "evt_reprocessing");
    let reprocessing_incident =
        failed_event(store, &project, &reprocessing, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &reprocessing_incident, at(10)).await;
    let awaiting = key(Provider::Stripe, "evt_awaiting");
    store
        .apply(
            p,
            &awaiting,
            receipt_for(&awaiting, "invoice.paid", None, 86_400),
            ctx(at(10)),
        )
        .await
        .unwrap();
    // Resolved, but recently.
    let recent = key(Provider::Stripe, "evt_recent");
    failed_event(store, &project, &recent, "invoice.paid", None, at(10)).await;
    store
        .apply(
            p,
            &recent,
            result(&recent, ResultStatus::Success),
            ctx(at(1000)),
        )
        .await
        .unwrap();

    // One at a time (limit 1), then nothing left to delete.
    assert_eq!(store.purge_resolved_history(at(500), 1).await.unwrap(), 1);
    assert_eq!(store.purge_resolved_history(at(500), 100).await.unwrap(), 1);
    assert_eq!(store.purge_resolved_history(at(500), 100).await.unwrap(), 0);

    for gone in [&resolved, &succeeded] {
        assert!(
            store.event(p, gone).await.unwrap().is_none(),
            "{gone:?} kept"
        );
    }
    assert!(
        store
            .incident(p, &resolved_incident)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .proof_link_by_token_hash(&[41; 32])
            .await
            .unwrap()
            .is_none(),
        "the resolved incident's proof link is deleted with it"
    );
    for kept in [&open, &reprocessing, &awaiting, &recent] {
        let stored = store.event(p, kept).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("{kept:?} was deleted"));
        assert!(!stored.timeline.is_empty(), "{kept:?} lost its timeline");
    }
    let open_now = store.incident(p, &open_incident).await.unwrap().unwrap();
    assert_eq!(
        open_now.record.incident.unwrap().state,
        IncidentState::Open,
        "an open incident survives"
    );
    assert!(
        store
            .proof_link_by_token_hash(&[42; 32])
            .await
            .unwrap()
            .is_some()
    );
    let reprocessing_now = store
        .incident(p, &reprocessing_incident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reprocessing_now.record.incident.unwrap().state,
        IncidentState::Reprocessing
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap(),
        1,
        "its callback is still queued"
    );
    // Past the recent one's resolution it goes too; the unfinished ones never do.
    assert_eq!(
        store.purge_resolved_history(at(2000), 100).await.unwrap(),
        1
    );
    assert!(store.event(p, &recent).await.unwrap().is_none());
    assert_eq!(
        store
            .purge_resolved_history(at(1_000_000), 100)
            .await
            .unwrap(),
        0
    );
    for kept in [&open, &reprocessing, &awaiting] {
        assert!(
            store.event(p, kept).await.unwrap().is_some(),
            "{kept:?} was deleted"
        );
    }
}

/// Users: unique emails, compared and stored lower-case.
pub async fn users(store: &dyn Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let email = format!("{}@Example.COM", unique("Alice"));
    store
        .create_user(User {
            id: new_id(ids::USER, T0),
            email: email.clone(),
            password_hash: "$argon2id$v=19$stub".to_owned(),
            created_at: T0,
            disabled_at: None,
            owner: false,
            totp_enabled: false,
        })
        .await
        .unwrap();
    let again = store
        .create_user(User {
            id: new_id(ids::USER, T0),
            email: email.to_uppercase(),
            password_hash: "$argon2id$v=19$other".to_owned(),
            created_at: T0,
            disabled_at: None,
            owner: false,
            totp_enabled: false,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let found = store
        .user_by_email(&email.to_uppercase())
        .await
        .unwrap()
        .expect("case-insensitive look-up");
    assert_eq!(found.email, email.to_lowercase());
    assert_eq!(found.password_hash, "$argon2id$v=19$stub");
    assert_eq!(found.created_at, T0);
    assert_eq!(
        store.user_by_email(&email.to_lowercase()).await.unwrap(),
        Some(found)
    );
    assert_eq!(
        store.user_by_email("nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}
