//! Every SQL statement of the PHLO runner lives here, one module per aggregate. Functions take a
//! caller-owned connection or transaction (`&mut PgConnection`), so the caller decides the transaction
//! boundary: a worker step is one transaction spanning runs, tokens, steps, counters, timers and outbox.
//!
//! Queries are checked at run time (`sqlx::query`), not at compile time, so building needs no database;
//! every query is exercised by the test suites against a real Postgres.
//!
//! This crate must not call NATS or the network, and holds no business rules beyond what keeps rows
//! consistent (e.g. a counter increments atomically).

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod accounts;
pub mod admission;
pub mod callbacks;
pub mod calls;
pub mod counters;
pub mod limits;
pub mod numbers;
pub mod outbox;
pub mod phlos;
pub mod rooms;
pub mod runs;
pub mod sealing;
pub mod steps;
pub mod timers;
pub mod tokens;

#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

pub use sqlx::Error as SqlxError;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
pub use sqlx::types::Json;
pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// The schema, embedded at compile time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored JSON does not decode: {0}")]
    Json(#[from] serde_json::Error),
    #[error("sealed secret: {0}")]
    Sealing(#[from] sealing::SealError),
}

impl StoreError {
    /// Transient failures (connection lost, serialization conflicts, pool exhausted) are worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(db)) => {
                matches!(
                    db.code().as_deref(),
                    Some("40001" | "40P01" | "57P01" | "57P03" | "53300")
                )
            }
            StoreError::Db(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            StoreError::Db(sqlx::Error::Protocol(_)) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A pool to the primary. Reads and writes go to the primary: replicas may lag or, on some managed
/// services, violate snapshot isolation.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

/// Creates the database named in `url` if it does not exist yet, so a first start on a fresh Postgres
/// needs no manual `createdb`. Connects to the server's `postgres` database to do so.
pub async fn ensure_database(url: &str) -> Result<()> {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => {
            conn.close().await?;
            Ok(())
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let (base, rest) = url.rsplit_once('/').unwrap_or((url, ""));
            let (name, query) = rest
                .split_once('?')
                .map_or((rest, None), |(n, q)| (n, Some(q)));
            let admin = match query {
                Some(q) => format!("{base}/postgres?{q}"),
                None => format!("{base}/postgres"),
            };
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
                .execute(&mut conn)
                .await;
            // Another replica may have created it in the meantime (42P04: duplicate database).
            match created {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() != Some("42P04") => {
                    Err(sqlx::Error::Database(e).into())
                }
                Err(other @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => Err(other.into()),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies pending migrations. Safe to run from several replicas at once: sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// `SELECT 1`, for readiness probes.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
