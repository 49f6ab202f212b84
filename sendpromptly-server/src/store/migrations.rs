//! Schema migrations shared by the storage backends.
//!
//! Each backend embeds its own ordered list of SQL files (with
//! `include_str!`) as [`Migration`]s and records what it applied in a table
//! [`MIGRATIONS_TABLE`] `(version, name, applied_at)`. The planning rules are
//! the same for every backend and live here, free of I/O, in [`plan`]:
//! versions are applied in ascending order, each in its own transaction, and
//! a database that has a version this binary does not know was migrated by a
//! newer SendPromptly, which is refused with
//! [`StoreError::MigrationsNewerThanBinary`] rather than risk running old
//! code against a newer schema.

use super::StoreError;

/// The name of the table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "_sendpromptly_migrations";

/// One schema migration: a version, a name and the SQL that applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Strictly increasing, starting at 1.
    pub version: i64,
    /// A short name (the file name without extension), recorded when applied.
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// The SQLite migrations, oldest first.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_console_sessions",
        sql: include_str!("../../migrations/sqlite/0002_console_sessions.sql"),
    },
    Migration {
        version: 4,
        name: "0004_reprocess_batches",
        sql: include_str!("../../migrations/sqlite/0004_reprocess_batches.sql"),
    },
    Migration {
        version: 5,
        name: "0005_alerts",
        sql: include_str!("../../migrations/sqlite/0005_alerts.sql"),
    },
    Migration {
        version: 6,
        name: "0006_secrets_at_rest_and_retention",
        sql: include_str!("../../migrations/sqlite/0006_secrets_at_rest_and_retention.sql"),
    },
    Migration {
        version: 7,
        name: "0007_provider_tap",
        sql: include_str!("../../migrations/sqlite/0007_provider_tap.sql"),
    },
    Migration {
        version: 8,
        name: "0008_stripe_reconcile",
        sql: include_str!("../../migrations/sqlite/0008_stripe_reconcile.sql"),
    },
    Migration {
        version: 9,
        name: "0009_scoped_keys_and_audit",
        sql: include_str!("../../migrations/sqlite/0009_scoped_keys_and_audit.sql"),
    },
    Migration {
        version: 10,
        name: "0010_console_users",
        sql: include_str!("../../migrations/sqlite/0010_console_users.sql"),
    },
    Migration {
        version: 11,
        name: "0011_timeline_chain",
        sql: include_str!("../../migrations/sqlite/0011_timeline_chain.sql"),
    },
    Migration {
        version: 12,
        name: "0012_analytics",
        sql: include_str!("../../migrations/sqlite/0012_analytics.sql"),
    },
    Migration {
        version: 13,
        name: "0013_trace_url_template",
        sql: include_str!("../../migrations/sqlite/0013_trace_url_template.sql"),
    },
    Migration {
        version: 14,
        name: "0014_drop_events_by_event_id",
        sql: include_str!("../../migrations/sqlite/0014_drop_events_by_event_id.sql"),
    },
    Migration {
        version: 15,
        name: "0015_rollup_deltas",
        sql: include_str!("../../migrations/sqlite/0015_rollup_deltas.sql"),
    },
    Migration {
        version: 16,
        name: "0016_stats_functions_planned_once",
        sql: include_str!("../../migrations/sqlite/0016_stats_functions_planned_once.sql"),
    },
    Migration {
        version: 17,
        name: "0017_stats_triggers_per_statement",
        sql: include_str!("../../migrations/sqlite/0017_stats_triggers_per_statement.sql"),
    },
];

/// The PostgreSQL migrations, oldest first (the same versions and names as
/// SQLite's, in PostgreSQL's dialect).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_console_sessions",
        sql: include_str!("../../migrations/postgres/0002_console_sessions.sql"),
    },
    Migration {
        version: 4,
        name: "0004_reprocess_batches",
        sql: include_str!("../../migrations/postgres/0004_reprocess_batches.sql"),
    },
    Migration {
        version: 5,
        name: "0005_alerts",
        sql: include_str!("../../migrations/postgres/0005_alerts.sql"),
    },
    Migration {
        version: 6,
        name: "0006_secrets_at_rest_and_retention",
        sql: include_str!("../../migrations/postgres/0006_secrets_at_rest_and_retention.sql"),
    },
    Migration {
        version: 7,
        name: "0007_provider_tap",
        sql: include_str!("../../migrations/postgres/0007_provider_tap.sql"),
    },
    Migration {
        version: 8,
        name: "0008_stripe_reconcile",
        sql: include_str!("../../migrations/postgres/0008_stripe_reconcile.sql"),
    },
    Migration {
        version: 9,
        name: "0009_scoped_keys_and_audit",
        sql: include_str!("../../migrations/postgres/0009_scoped_keys_and_audit.sql"),
    },
    Migration {
        version: 10,
        name: "0010_console_users",
        sql: include_str!("../../migrations/postgres/0010_console_users.sql"),
    },
    Migration {
        version: 11,
        name: "0011_timeline_chain",
        sql: include_str!("../../migrations/postgres/0011_timeline_chain.sql"),
    },
    Migration {
        version: 12,
        name: "0012_analytics",
        sql: include_str!("../../migrations/postgres/0012_analytics.sql"),
    },
    Migration {
        version: 13,
        name: "0013_trace_url_template",
        sql: include_str!("../../migrations/postgres/0013_trace_url_template.sql"),
    },
    Migration {
        version: 14,
        name: "0014_drop_events_by_event_id",
        sql: include_str!("../../migrations/postgres/0014_drop_events_by_event_id.sql"),
    },
    Migration {
        version: 15,
        name: "0015_rollup_deltas",
        sql: include_str!("../../migrations/postgres/0015_rollup_deltas.sql"),
    },
    Migration {
        version: 16,
        name: "0016_stats_functions_planned_once",
        sql: include_str!("../../migrations/postgres/0016_stats_functions_planned_once.sql"),
    },
    Migration {
        version: 17,
        name: "0017_stats_triggers_per_statement",
        sql: include_str!("../../migrations/postgres/0017_stats_triggers_per_statement.sql"),
    },
];

/// A migration recorded as applied in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// The name recorded when it was applied.
    pub name: String,
}

/// Decides which of `known` still need applying to a database that has
/// `applied`, in order.
///
/// Fails with [`StoreError::MigrationsNewerThanBinary`] when the database has
/// a version this binary does not know, and with [`StoreError::Corrupt`] when
/// a known version was recorded under another name (the binary and the
/// database disagree about what that version is).
pub fn plan<'a>(
    known: &'a [Migration],
    applied: &[AppliedMigration],
) -> Result<Vec<&'a Migration>, StoreError> {
    debug_assert!(
        known.windows(2).all(|w| w[0].version < w[1].version),
        "migrations must be listed in strictly increasing version order"
    );
    if let Some(unknown) = applied
        .iter()
        .filter(|a| !known.iter().any(|m| m.version == a.version))
        .max_by_key(|a| a.version)
    {
        return Err(StoreError::MigrationsNewerThanBinary(format!(
            "version {} `{}`",
            unknown.version, unknown.name
        )));
    }
    for a in applied {
        if let Some(m) = known.iter().find(|m| m.version == a.version)
            && m.name != a.name
        {
            return Err(StoreError::Corrupt(format!(
                "migration version {} is recorded as `{}` but this binary knows it as `{}`",
                a.version, a.name, m.name
            )));
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

/// Logs a migration just applied.
pub(super) fn log_applied(migration: &Migration) {
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied migration"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "",
        },
        Migration {
            version: 2,
            name: "two",
            sql: "",
        },
    ];

    fn applied(v: i64, name: &str) -> AppliedMigration {
        AppliedMigration {
            version: v,
            name: name.to_owned(),
        }
    }

    #[test]
    fn plans_what_is_missing_in_order() {
        let todo = plan(KNOWN, &[]).unwrap();
        assert_eq!(
            todo.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let todo = plan(KNOWN, &[applied(1, "one")]).unwrap();
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
        assert!(
            plan(KNOWN, &[applied(1, "one"), applied(2, "two")])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_a_newer_database() {
        let err = plan(KNOWN, &[applied(1, "one"), applied(3, "three")]).unwrap_err();
        assert!(
            matches!(err, StoreError::MigrationsNewerThanBinary(ref v) if v.contains('3')),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_renamed_version() {
        let err = plan(KNOWN, &[applied(1, "uno")]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }
}
