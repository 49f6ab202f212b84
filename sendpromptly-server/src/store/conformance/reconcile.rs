//! The Stripe reconciler's state: the lease one owner holds at a time, its
//! expiry, progress saved only under the lease, and a watermark that never
//! goes back.

use super::*;
use crate::store::{ReconcileOutcome, ReconcilePass};

const LEASE: Duration = Duration::from_secs(60);

/// A lease is taken once: another owner is refused until it is freed or
/// runs out; progress and outcomes are written only by the holder; a
/// failure keeps the pass to resume, a success clears it and raises the
/// watermark, which a later, older success does not lower.
pub async fn reconcile_lease_and_progress(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    assert_eq!(store.reconcile_state(&project.id).await.unwrap(), None);

    let state = store
        .take_reconcile_lease(&project.id, "a", at(0), LEASE)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(state.lease_owner.as_deref(), Some("a"));
    assert_eq!(state.lease_until, Some(at(60)));
    assert_eq!(state.watermark, None);
    assert_eq!(state.pass, None);
    assert!(
        store
            .take_reconcile_lease(&project.id, "b", at(30), LEASE)
            .await
            .unwrap()
            .is_none(),
        "a running lease is not taken by another owner"
    );
    assert!(
        store
            .take_reconcile_lease(&other.id, "b", at(30), LEASE)
            .await
            .unwrap()
            .is_some(),
        "leases are per project"
    );

    let pass = ReconcilePass {
        lower: 1_000,
        upper: 2_000,
        cursor: Some("evt_3".to_owned()),
        newest: Some(1_900),
    };
    assert!(
        !store
            .save_reconcile_progress(&project.id, "b", &pass, 3, at(31), LEASE)
            .await
            .unwrap(),
        "only the holder saves progress"
    );
    assert!(
        store
            .save_reconcile_progress(&project.id, "a", &pass, 3, at(31), LEASE)
            .await
            .unwrap()
    );
    let state = store.reconcile_state(&project.id).await.unwrap().unwrap();
    assert_eq!(state.pass.as_ref(), Some(&pass));
    assert_eq!(state.events_fed, 3);
    assert_eq!(state.lease_until, Some(at(91)), "saving extends the lease");

    // A failure keeps the pass to resume and frees the lease.
    let failed = ReconcileOutcome::Failed {
        kind: "unauthorized".to_owned(),
        message: "Stripe refused the restricted key (401): Invalid API Key".to_owned(),
    };
    assert!(
        !store
            .finish_reconcile(&project.id, "b", at(32), &failed)
            .await
            .unwrap(),
        "only the holder finishes"
    );
    assert!(
        store
            .finish_reconcile(&project.id, "a", at(32), &failed)
            .await
            .unwrap()
    );
    let state = store.reconcile_state(&project.id).await.unwrap().unwrap();
    assert_eq!(state.pass.as_ref(), Some(&pass));
    assert_eq!(state.lease_owner, None);
    assert_eq!(state.last_run_at, Some(at(32)));
    assert_eq!(state.last_success_at, None);
    assert_eq!(state.last_error_kind.as_deref(), Some("unauthorized"));
    assert!(state.last_error.unwrap().contains("401"));

    // Another owner takes the freed lease, resumes and succeeds.
    let state = store
        .take_reconcile_lease(&project.id, "b", at(33), LEASE)
        .await
        .unwrap()
        .expect("a freed lease is taken");
    assert_eq!(state.pass.as_ref(), Some(&pass), "the pass is resumed");
    let succeeded = ReconcileOutcome::Succeeded {
        watermark: Some(1_950),
    };
    assert!(
        store
            .finish_reconcile(&project.id, "b", at(40), &succeeded)
            .await
            .unwrap()
    );
    let state = store.reconcile_state(&project.id).await.unwrap().unwrap();
    assert_eq!(state.watermark, Some(1_950));
    assert_eq!(state.pass, None);
    assert_eq!(state.last_success_at, Some(at(40)));
    assert_eq!(state.last_error_kind, None);
    assert_eq!(state.last_error, None);
    assert_eq!(state.events_fed, 3);

    // An older watermark does not lower it; a success without events keeps it.
    for watermark in [Some(1_200), None] {
        store
            .take_reconcile_lease(&project.id, "a", at(50), LEASE)
            .await
            .unwrap()
            .unwrap();
        let outcome = ReconcileOutcome::Succeeded { watermark };
        store
            .finish_reconcile(&project.id, "a", at(51), &outcome)
            .await
            .unwrap();
        let state = store.reconcile_state(&project.id).await.unwrap().unwrap();
        assert_eq!(state.watermark, Some(1_950));
    }

    let states = store.reconcile_states().await.unwrap();
    let ids: BTreeSet<&str> = states.iter().map(|s| s.project_id.as_str()).collect();
    assert!(ids.contains(project.id.as_str()) && ids.contains(other.id.as_str()));
}

/// A dead holder's lease runs out: another owner takes it then, and the
/// old holder can no longer save or finish.
pub async fn reconcile_lease_expires(store: &dyn Store) {
    let project = new_project(store).await;
    store
        .take_reconcile_lease(&project.id, "dead", at(0), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .take_reconcile_lease(&project.id, "live", at(59), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let state = store
        .take_reconcile_lease(&project.id, "live", at(60), LEASE)
        .await
        .unwrap()
        .expect("an expired lease is taken");
    assert_eq!(state.lease_owner.as_deref(), Some("live"));
    let pass = ReconcilePass {
        lower: 1,
        upper: 2,
        cursor: None,
        newest: None,
    };
    assert!(
        !store
            .save_reconcile_progress(&project.id, "dead", &pass, 1, at(61), LEASE)
            .await
            .unwrap()
    );
    let outcome = ReconcileOutcome::Succeeded {
        watermark: Some(99),
    };
    assert!(
        !store
            .finish_reconcile(&project.id, "dead", at(61), &outcome)
            .await
            .unwrap()
    );
    let state = store.reconcile_state(&project.id).await.unwrap().unwrap();
    assert_eq!(state.watermark, None);
    assert_eq!(state.events_fed, 0);
    // The holder's own lease, once run out, no longer saves progress.
    assert!(
        !store
            .save_reconcile_progress(&project.id, "live", &pass, 1, at(121), LEASE)
            .await
            .unwrap()
    );
}

/// Many owners racing for one project's lease: exactly one wins.
pub async fn concurrent_reconcile_leases(store: &dyn Store) {
    let project = new_project(store).await;
    let project_id = project.id.as_str();
    let tasks: Vec<BoxedTask<'_, StoreResult<Option<crate::store::ReconcileState>>>> = (0..8)
        .map(|n| {
            let owner = format!("owner-{n}");
            Box::pin(async move {
                store
                    .take_reconcile_lease(project_id, &owner, at(0), LEASE)
                    .await
            }) as BoxedTask<'_, _>
        })
        .collect();
    let taken = run_in_parallel(tasks)
        .into_iter()
        .map(|result| result.expect("taking a lease does not fail"))
        .filter(Option::is_some)
        .count();
    assert_eq!(taken, 1, "exactly one owner takes a free lease");
}
