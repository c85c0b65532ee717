//! Every SQL statement of the PHLO runner lives here, one module per aggregate. Functions take a
//! caller-owned connection or transaction (`&mut Conn`), so the caller decides the transaction
//! boundary: a worker step is one transaction spanning runs, tokens, steps, counters, timers and outbox.
//!
//! Two backends sit behind the same functions ([`db`]): Postgres for the distributed services, and an
//! embedded SQLite file for `phlo dev`.
//!
//! Queries are checked at run time (`sqlx::query`), not at compile time, so building needs no database;
//! every query is exercised by the test suites against a real Postgres, and the store's own tests run
//! each on an in-memory SQLite database too (`testing::on_both`).
//!
//! This crate must not call NATS or the network, and holds no business rules beyond what keeps rows
//! consistent (e.g. a counter increments atomically).

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod accounts;
pub mod admission;
pub mod callbacks;
pub mod calls;
pub mod counters;
pub mod db;
pub mod limits;
pub mod numbers;
pub mod outbox;
pub mod phlos;
pub mod rooms;
pub mod runs;
pub mod sealing;
pub mod steps;
pub mod stored;
pub mod timers;
pub mod tokens;

#[cfg(feature = "testing")]
pub mod testing;
#[cfg(test)]
mod tests;

pub use sqlx::Error as SqlxError;
use sqlx::migrate::Migrator;
pub use sqlx::types::Json;

pub use db::{Backend, Conn, Pool};

/// The schema, embedded at compile time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The same schema for the embedded SQLite store, from `migrations/sqlite/`.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

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
    /// A setting the store cannot work with, e.g. a SQLite file for a standalone service.
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    /// Transient failures (connection lost, serialization conflicts, pool exhausted) are worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
            StoreError::Db(sqlx::Error::Database(db))
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
            {
                db.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6))
            }
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

/// A pool to the primary (`postgres://…`), or to an embedded SQLite file (`sqlite://…`). Reads and
/// writes go to the primary: replicas may lag or, on some managed services, violate snapshot isolation.
pub async fn connect(url: &str, max_connections: u32, min_connections: u32) -> Result<Pool> {
    Pool::connect(url, max_connections, min_connections).await
}

/// Creates the database named in `url` if it does not exist yet, so a first start on a fresh Postgres
/// needs no manual `createdb`. Connects to the server's `postgres` database to do so.
pub async fn ensure_database(url: &str) -> Result<()> {
    use sqlx::Connection;
    if db::is_sqlite(url) {
        // The file is created when the pool connects.
        return Ok(());
    }
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
pub async fn migrate(pool: &Pool) -> Result<()> {
    match pool {
        Pool::Postgres(p) => MIGRATOR.run(p).await?,
        Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
    }
    Ok(())
}

/// `SELECT 1`, for readiness probes.
pub async fn ping(pool: &Pool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    on!(&mut conn, |c, _d| sqlx::query("SELECT 1")
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}
