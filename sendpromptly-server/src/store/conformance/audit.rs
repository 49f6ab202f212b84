//! Scoped keys' use and the audit log (issue #24).

use sendpromptly_core::scope::{Scope, ScopeSet};

use super::*;
use crate::store::{AuditEntry, AuditFilter, KeyUse, with_audit};

fn entry(project: &Project, n: i64, action: &str, actor: &str) -> AuditEntry {
    AuditEntry {
        id: new_id(ids::AUDIT, at(n)),
        project_id: project.id.clone(),
        at: at(n),
        actor: actor.to_owned(),
        ip: Some("192.0.2.7".to_owned()),
        action: action.to_owned(),
        target: project.id.clone(),
        before: Some(serde_json::json!({"n": n - 1})),
        after: Some(serde_json::json!({"n": n})),
    }
}

/// Keys keep their scopes; uses add up their classes, the newest use wins
/// the last-used time and class.
pub async fn key_scopes_and_uses(store: &dyn Store) {
    let project = new_project(store).await;
    let mut key = api_key(&project, 41, at(0));
    key.scopes = ScopeSet::only(Scope::Read).with(Scope::Operate);
    store.insert_api_key(key.clone()).await.unwrap();
    let stored = store.api_key_by_hash(&[41; 32]).await.unwrap().unwrap();
    assert_eq!(stored.scopes, key.scopes);
    assert_eq!(stored.last_used_at, None);
    assert_eq!(stored.used_classes, ScopeSet::EMPTY);

    let use_at = |seconds, class| KeyUse {
        key_id: key.id.clone(),
        at: at(seconds),
        class,
        classes: ScopeSet::only(class),
    };
    store
        .record_key_uses(&[use_at(10, Scope::Read)])
        .await
        .unwrap();
    store
        .record_key_uses(&[use_at(20, Scope::Operate)])
        .await
        .unwrap();
    // A late writer with an older use changes neither time nor class.
    store
        .record_key_uses(&[use_at(5, Scope::Ingest)])
        .await
        .unwrap();
    store.record_key_uses(&[]).await.unwrap();
    let used = store.api_key_by_hash(&[41; 32]).await.unwrap().unwrap();
    assert_eq!(used.last_used_at, Some(at(20)));
    assert_eq!(used.last_used_class, Some(Scope::Operate));
    assert_eq!(
        used.used_classes,
        ScopeSet::only(Scope::Ingest)
            .with(Scope::Read)
            .with(Scope::Operate)
    );
}

/// An audited write commits its entry with it; a failed write or one that
/// changes nothing commits none and hands it back.
pub async fn audit_entries_commit_with_their_write(store: &dyn Store) {
    let project = new_project(store).await;
    let patch = ProjectPatch {
        default_deadline_seconds: Some(60),
        ..ProjectPatch::default()
    };
    let (updated, left) = with_audit(
        entry(&project, 1, "project.update", "cli"),
        store.update_project(&project.id, patch.clone()),
    )
    .await;
    assert_eq!(updated.unwrap().default_deadline_seconds, 60);
    assert!(left.is_none(), "the update took the entry");
    let (failed, left) = with_audit(
        entry(&project, 2, "project.update", "cli"),
        store.update_project("prj_missing", patch),
    )
    .await;
    assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
    assert!(
        left.is_some(),
        "a failed write records nothing (`service::audit::record` drops it)"
    );
    let (revoked, left) = with_audit(
        entry(&project, 3, "api_key.revoke", "cli"),
        store.revoke_api_key(&project.id, "key_nope", at(3)),
    )
    .await;
    assert!(!revoked.unwrap());
    assert!(left.is_some(), "nothing written, the entry is handed back");
    let key = api_key(&project, 42, at(4));
    let (inserted, left) = with_audit(
        entry(&project, 4, "api_key.create", "cli"),
        store.insert_api_key(key),
    )
    .await;
    inserted.unwrap();
    assert!(left.is_none());

    let page = store
        .audit_page(
            &project.id,
            &AuditFilter::default(),
            PageRequest {
                limit: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = page.data.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["api_key.create", "project.update"]);
    assert_eq!(page.data[1], entry_like(&page.data[1], &project, 1));
}

fn entry_like(found: &AuditEntry, project: &Project, n: i64) -> AuditEntry {
    AuditEntry {
        id: found.id.clone(),
        ..entry(project, n, "project.update", "cli")
    }
}

/// Pages newest first without repeats; filters; the retention purge.
pub async fn audit_pages_filters_and_purge(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    for n in 1..=25 {
        let actor = if n % 5 == 0 {
            "user:a@example.com"
        } else {
            "cli"
        };
        store
            .insert_audit(&entry(&project, n, "project.update", actor))
            .await
            .unwrap();
    }
    store
        .insert_audit(&entry(&other, 1, "project.update", "cli"))
        .await
        .unwrap();
    let all = AuditFilter::default();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .audit_page(&project.id, &all, PageRequest { limit: 10, cursor })
            .await
            .unwrap();
        seen.extend(page.data.iter().map(|e| e.at));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (1..=25).rev().map(at).collect();
    assert_eq!(seen, expected);

    let project_id = project.id.as_str();
    let first = |filter: AuditFilter| async move {
        store
            .audit_page(
                project_id,
                &filter,
                PageRequest {
                    limit: 100,
                    cursor: None,
                },
            )
            .await
            .unwrap()
            .data
    };
    let by_user = first(AuditFilter {
        actor: Some("user:a@example.com".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_user.len(), 5);
    let window = first(AuditFilter {
        since: Some(at(10)),
        until: Some(at(13)),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        window.iter().map(|e| e.at).collect::<Vec<_>>(),
        [at(12), at(11), at(10)]
    );
    let none = first(AuditFilter {
        action: Some("api_key.create".into()),
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty());
    let bad = store
        .audit_page(
            &project.id,
            &all,
            PageRequest {
                limit: 10,
                cursor: Some("not-a-cursor".into()),
            },
        )
        .await;
    assert!(
        matches!(bad, Err(StoreError::NotFound("cursor"))),
        "{bad:?}"
    );

    assert_eq!(
        store.purge_audit(at(11)).await.unwrap(),
        11,
        "10 + other's 1"
    );
    assert_eq!(first(AuditFilter::default()).await.len(), 15);
}
