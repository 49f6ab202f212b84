//! The analytics rollups of migration 0012 (issue #25), kept by triggers in
//! the transaction of each event and incident write: the same rows on both
//! backends for the same commands.

use std::collections::BTreeMap;

use sendpromptly_core::alert::SloFacts;
use sendpromptly_core::stats::bucket_of;
use sendpromptly_core::wire::SloObjective;

use super::*;

/// Receipts, successes, an incident repaired by Reprocess and one resolved
/// by hand give the histogram buckets and counters of `docs/analytics.md`;
/// the SLO slots count the successes within the threshold; a burn episode
/// starts once and enqueues its alert once.
pub async fn analytics_rollups(store: &dyn Store) {
    let project = new_project(store).await;
    store
        .put_slo_objectives(
            &project.id,
            &[SloObjective {
                event_type: "invoice.paid".to_owned(),
                objective_percent: 99.0,
                threshold_seconds: 300,
                window_days: 30,
            }],
        )
        .await
        .unwrap();
    let apply = |k: EventKey, command: Command, now: Timestamp| {
        let project_id = project.id.clone();
        async move {
            store
                .apply(&project_id, &k, command, ctx(now))
                .await
                .unwrap()
        }
    };
    // e1: success 2 s after receipt; e2: 400 s (past the threshold).
    let e1 = stripe("evt_stats_1");
    apply(e1.clone(), receipt(&e1, None), at(0)).await;
    apply(e1.clone(), result(&e1, ResultStatus::Success), at(2)).await;
    let e2 = stripe("evt_stats_2");
    apply(e2.clone(), receipt(&e2, None), at(10)).await;
    apply(e2.clone(), result(&e2, ResultStatus::Success), at(410)).await;
    // A duplicate success changes nothing.
    apply(e2.clone(), result(&e2, ResultStatus::Success), at(420)).await;
    // e3 fails at +30, is reprocessed and succeeds at +100: repaired by Reprocess.
    let e3 = stripe("evt_stats_3");
    let inc3 = failed_event(store, &project, &e3, "invoice.paid", None, at(30)).await;
    request_reprocess(store, &project, &inc3, at(40)).await;
    apply(e3.clone(), result(&e3, ResultStatus::Success), at(100)).await;
    // e4 fails at +50 and is resolved by hand at +250.
    let e4 = stripe("evt_stats_4");
    let inc4 = failed_event(store, &project, &e4, "invoice.paid", None, at(50)).await;
    store
        .apply_to_incident(
            &project.id,
            &inc4,
            Command::ManualResolve {
                note: "credited by hand".to_owned(),
            },
            ctx(at(250)),
        )
        .await
        .unwrap();

    let day = T0.unix_millis().div_euclid(86_400_000) * 86_400_000;
    let rows = store
        .stats_rows(
            &project.id,
            Timestamp::from_unix_millis(day),
            at(1000),
            None,
        )
        .await
        .unwrap();
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.day, day);
        assert_eq!(row.event_type, "invoice.paid");
        *got.entry((row.metric.clone(), row.bucket)).or_default() += row.n;
    }
    let want: BTreeMap<(String, i64), u64> = [
        (("received".to_owned(), 0), 4),
        (("incidents".to_owned(), 0), 2),
        (("repaired_reprocess".to_owned(), 0), 1),
        (("repaired_manual".to_owned(), 0), 1),
        (("tte".to_owned(), bucket_of(2_000)), 1),
        (("tte".to_owned(), bucket_of(400_000)), 1),
        (("tte".to_owned(), bucket_of(70_000)), 1),
        (("ttr".to_owned(), bucket_of(70_000)), 1),
        (("ttr".to_owned(), bucket_of(200_000)), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    let other_type = store
        .stats_rows(
            &project.id,
            Timestamp::from_unix_millis(day),
            at(1000),
            Some("order.created"),
        )
        .await
        .unwrap();
    assert!(other_type.is_empty(), "{other_type:?}");

    let counts = store
        .slo_counts(
            &project.id,
            "invoice.paid",
            Timestamp::from_unix_millis(day),
            at(1000),
        )
        .await
        .unwrap();
    assert_eq!(counts, (4, 2), "e1 and e3 within 300 s");

    let facts = SloFacts {
        event_type: "invoice.paid".to_owned(),
        objective_percent: 99.0,
        threshold_seconds: 300,
        long_minutes: 60,
        short_minutes: 5,
        factor: 14.4,
        burn_rate_long: 50.0,
        burn_rate_short: 50.0,
        console_url: String::new(),
    };
    assert!(
        store
            .start_slo_episode(&project.id, &facts, at(900))
            .await
            .unwrap()
    );
    assert!(
        !store
            .start_slo_episode(&project.id, &facts, at(960))
            .await
            .unwrap()
    );
    store
        .end_slo_episode(&project.id, "invoice.paid", at(1000))
        .await
        .unwrap();
    assert!(
        store
            .start_slo_episode(&project.id, &facts, at(1100))
            .await
            .unwrap()
    );
}
