//! What both engines do to keep pooled connections clean: a connection is
//! never handed back to a pool inside a transaction.
//!
//! Every transaction is owned by a guard that ends it (sqlx's
//! `Transaction`, which rolls back on drop; [`HandTransaction`] for the
//! SQLite group writer's hand-opened one), and every HTTP request runs on a
//! task its client cannot cancel (`router::run_to_completion`). As a last line,
//! [`reuse_unless_in_transaction`] runs whenever a connection goes back to a
//! pool: one still inside a transaction (which on SQLite would hold the
//! single write lock for ever) is closed, not reused, which rolls the
//! transaction back; it is logged as an error and counted
//! ([`discarded_in_transaction`], `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;
use sqlx::pool::PoolConnection;

/// Connections closed because they came back to a pool inside a transaction.
static DISCARDED_IN_TRANSACTION: AtomicU64 = AtomicU64::new(0);

/// How many connections were closed because they came back to a pool inside
/// a transaction, in this process (a bug if ever non-zero).
pub fn discarded_in_transaction() -> u64 {
    DISCARDED_IN_TRANSACTION.load(Ordering::Relaxed)
}

/// Counts and logs one connection found inside a transaction.
fn count_discard(pool: &str, how: &str) {
    DISCARDED_IN_TRANSACTION.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        pool,
        how,
        "a database connection was returned to the pool inside a transaction; \
         it is closed (its transaction rolled back) instead of being reused"
    );
}

/// What the pools' `after_release` check answers.
pub(super) type ReleaseCheck =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send>>;

/// The pools' `after_release` check: `Ok(false)` (close it) for a connection
/// sqlx counts as inside a transaction.
pub(super) fn reuse_unless_in_transaction<C: Connection>(
    conn: &C,
    pool: &'static str,
) -> ReleaseCheck {
    let reuse = !conn.is_in_transaction();
    if !reuse {
        count_discard(pool, "sqlx transaction depth above zero");
    }
    Box::pin(std::future::ready(Ok(reuse)))
}

/// A transaction opened by hand (a `BEGIN` sent as SQL, which sqlx does not
/// track) on a pooled connection. Dropped while still open (a panic, a
/// cancelled future, a `ROLLBACK` that failed), it closes the connection
/// instead of returning it to the pool, so the transaction cannot outlive it.
pub(super) struct HandTransaction<DB: sqlx::Database> {
    conn: PoolConnection<DB>,
    open: bool,
}

impl<DB: sqlx::Database> HandTransaction<DB> {
    /// Takes `conn`, about to send its `BEGIN`: from here on it counts as open.
    pub(super) fn new(conn: PoolConnection<DB>) -> Self {
        HandTransaction { conn, open: true }
    }

    /// The connection, to run the transaction's statements on.
    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The transaction ended (a `COMMIT` or `ROLLBACK` succeeded, or a
    /// failed `COMMIT` that SQLite already rolled back).
    pub(super) fn ended(&mut self) {
        self.open = false;
    }
}

impl<DB: sqlx::Database> Drop for HandTransaction<DB> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
            count_discard("writer", "hand-opened transaction still open");
        }
    }
}
