//! The store seam: one pool and connection type over two backends. Postgres is the production store
//! (every distributed service); SQLite, embedded in the process, backs `phlo dev`, where nothing but
//! the binary may be needed.
//!
//! Store functions take `&mut Conn`, a pooled connection or a transaction, and run their statement on
//! whichever backend it is with [`on!`]: the same builder chain is compiled once per backend, so binds
//! and row types are written once. Most SQL is written for Postgres and translated for SQLite by
//! [`Dialect::sql`] (casts, `now()`, `make_interval`, row locks); statements SQLite cannot express
//! that way (data-modifying CTEs, arrays, `xid8`) have their own SQLite text beside the Postgres one.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use crate::{Result, StoreError};

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A pool on either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    /// `postgres://…`, or `sqlite://<file>`, `sqlite://<name>?mode=memory` or `sqlite::memory:`.
    ///
    /// A SQLite pool holds one connection: SQLite has one writer at a time anyway, and with one
    /// connection every transaction sees the last commit and none meets `SQLITE_BUSY`. It is shared by
    /// everything in the process that connects to the same URL (the gateway, worker and callback
    /// service of `phlo dev`), as the in-process queue is; `sqlite::memory:` is a new private database
    /// each time (tests).
    ///
    /// A Postgres pool opens connections as the load needs them, up to `max_connections`, and keeps
    /// `min_connections` open at all times (at most `max_connections`).
    pub async fn connect(url: &str, max_connections: u32, min_connections: u32) -> Result<Pool> {
        if !is_sqlite(url) {
            return Ok(Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .min_connections(min_connections.min(max_connections))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            ));
        }
        static SHARED: OnceLock<tokio::sync::Mutex<HashMap<String, SqlitePool>>> = OnceLock::new();
        let private = url == "sqlite::memory:";
        if !private && !EMBEDDED_ALLOWED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Config(format!(
                "DATABASE_URL={url} (an embedded SQLite store) works only in `phlo dev` and \
                 `phlo serve`, which run every service in one process; separate processes cannot \
                 share it: set DATABASE_URL to a Postgres server, e.g. \
                 postgres://postgres@127.0.0.1:5432/phlo"
            )));
        }
        let mut shared = SHARED.get_or_init(Default::default).lock().await;
        if let Some(pool) = shared.get(url).filter(|_| !private) {
            return Ok(Pool::Sqlite(pool.clone()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL survives a process crash; only an OS crash may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // An in-memory database lives as long as its connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        if !private {
            shared.insert(url.to_owned(), pool.clone());
        }
        Ok(Pool::Sqlite(pool))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// A connection for statements that each commit on their own.
    pub async fn acquire(&self) -> Result<Conn> {
        Ok(Conn(match self {
            Pool::Postgres(p) => Inner::PgPooled(p.acquire().await?),
            Pool::Sqlite(p) => Inner::LitePooled(p.acquire().await?),
        }))
    }

    /// A connection on which a store call documented as one Postgres statement is atomic: a plain
    /// Postgres connection (the statement is its own transaction, no BEGIN/COMMIT round trips) or a
    /// SQLite transaction (where the call is several statements). [`Conn::commit`] it either way.
    pub async fn begin_atomic(&self) -> Result<Conn> {
        match self {
            Pool::Postgres(_) => self.acquire().await,
            Pool::Sqlite(_) => self.begin().await,
        }
    }

    /// A transaction: [`Conn::commit`] it, or dropping it rolls back.
    pub async fn begin(&self) -> Result<Conn> {
        Ok(Conn(match self {
            Pool::Postgres(p) => Inner::PgTx(p.begin().await?),
            Pool::Sqlite(p) => Inner::LiteTx(p.begin().await?),
        }))
    }

    /// Closes a Postgres pool. A SQLite pool is shared by the process (see [`Pool::connect`]) and
    /// stays open until it exits.
    pub async fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(_) => {}
        }
    }

    /// The Postgres pool, for tests and tools that inspect Postgres directly.
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }
}

static EMBEDDED_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Declares that this process runs every service that uses the store (`phlo dev`, `phlo serve`), so
/// that [`Pool::connect`] accepts a SQLite file. A standalone gateway, worker or callback service must
/// not: SQLite serialises writers within one process, not across several.
pub fn allow_embedded() {
    EMBEDDED_ALLOWED.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// A pooled connection, or a transaction on one (from [`Pool::begin`]).
pub struct Conn(Inner);

enum Inner {
    PgPooled(PoolConnection<Postgres>),
    PgTx(sqlx::Transaction<'static, Postgres>),
    LitePooled(PoolConnection<Sqlite>),
    LiteTx(sqlx::Transaction<'static, Sqlite>),
}

/// The driver connection under a [`Conn`], for [`on!`].
pub enum Raw<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self.0 {
            Inner::PgPooled(_) | Inner::PgTx(_) => Backend::Postgres,
            Inner::LitePooled(_) | Inner::LiteTx(_) => Backend::Sqlite,
        }
    }

    pub fn raw(&mut self) -> Raw<'_> {
        match &mut self.0 {
            Inner::PgPooled(c) => Raw::Postgres(c),
            Inner::PgTx(t) => Raw::Postgres(t),
            Inner::LitePooled(c) => Raw::Sqlite(c),
            Inner::LiteTx(t) => Raw::Sqlite(t),
        }
    }

    /// Commits a transaction; a plain connection has nothing to commit.
    pub async fn commit(self) -> Result<()> {
        match self.0 {
            Inner::PgTx(t) => t.commit().await?,
            Inner::LiteTx(t) => t.commit().await?,
            Inner::PgPooled(_) | Inner::LitePooled(_) => {}
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.0 {
            Inner::PgTx(t) => t.rollback().await?,
            Inner::LiteTx(t) => t.rollback().await?,
            Inner::PgPooled(_) | Inner::LitePooled(_) => {}
        }
        Ok(())
    }
}

/// Runs `body` against the connection's backend: `$c` is the driver connection (`&mut PgConnection`
/// or `&mut SqliteConnection`) and `$d` the [`Dialect`], to translate or pick SQL text.
#[macro_export]
#[doc(hidden)]
macro_rules! on {
    ($conn:expr, |$c:ident, $d:ident| $body:expr) => {
        match $crate::db::Conn::raw($conn) {
            $crate::db::Raw::Postgres($c) => {
                let $d = $crate::db::Dialect::Postgres;
                $body
            }
            $crate::db::Raw::Sqlite($c) => {
                let $d = $crate::db::Dialect::Sqlite;
                $body
            }
        }
    };
}

/// The SQL dialect of the arm of [`on!`] being run: the backend, as seen by the SQL text.
pub type Dialect = Backend;

impl Backend {
    /// Postgres SQL as is, or translated for SQLite (once per statement; the translations are kept
    /// for the life of the process, a fixed set).
    pub fn sql(self, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => {
                static CACHE: OnceLock<Mutex<HashMap<usize, &'static str>>> = OnceLock::new();
                let cache = CACHE.get_or_init(Default::default);
                let key = postgres.as_ptr() as usize ^ (postgres.len() << 48);
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                cache
                    .entry(key)
                    .or_insert_with(|| Box::leak(to_sqlite(postgres).into_boxed_str()))
            }
        }
    }

    /// [`Dialect::sql`] for text built at run time (listings with optional filters).
    pub fn sql_owned(self, postgres: String) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(match self {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => to_sqlite(&postgres),
        })
    }

    /// One of two texts, for statements the translation cannot express.
    pub fn pick(self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match self {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
        }
    }
}

/// `now()` in SQLite, in the text form sqlx writes timestamps in (RFC 3339, UTC), so stored and
/// computed timestamps compare as text in time order.
pub const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

/// Translates the Postgres forms the store uses into SQLite: `now()` and `now() ± make_interval(secs =>
/// x)`, `::type` casts (SQLite's values carry their type), `ILIKE` (SQLite's `LIKE` ignores ASCII case)
/// and row locks (SQLite locks the whole database for the writing transaction).
pub fn to_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("now()") {
            let trimmed = after.trim_start();
            let sign = trimmed.chars().next().filter(|c| *c == '+' || *c == '-');
            let interval = sign.and_then(|s| {
                let arg = trimmed[1..].trim_start().strip_prefix("make_interval(")?;
                let arg = arg.trim_start().strip_prefix("secs")?.trim_start();
                let arg = arg.strip_prefix("=>")?;
                let end = closing_paren(arg)?;
                Some((s, &arg[..end], &arg[end + 1..]))
            });
            match interval {
                Some((s, secs, after)) => {
                    out.push_str(&format!(
                        "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', {s}({}) || ' seconds')",
                        to_sqlite(secs.trim())
                    ));
                    rest = after;
                }
                None => {
                    out.push_str(SQLITE_NOW);
                    rest = after;
                }
            }
            continue;
        }
        if let Some(after) = rest.strip_prefix("::") {
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = &after[name_len..];
            continue;
        }
        if let Some(after) = strip_prefix_word(rest, "FOR UPDATE") {
            let after = strip_prefix_word(after.trim_start(), "SKIP LOCKED")
                .or_else(|| {
                    let of = strip_prefix_word(after.trim_start(), "OF")?.trim_start();
                    let len = of
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(of.len());
                    Some(&of[len..])
                })
                .unwrap_or(after);
            rest = after;
            continue;
        }
        if let Some(after) = strip_prefix_word(rest, "ILIKE") {
            out.push_str("LIKE");
            rest = after;
            continue;
        }
        // Copy one character; string literals verbatim (a `::` or `now()` inside one is text).
        let mut chars = rest.chars();
        let c = chars.next().unwrap_or_default();
        if c == '\'' {
            let end = rest[1..].find('\'').map_or(rest.len(), |i| i + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            out.push(c);
            rest = chars.as_str();
        }
    }
    out
}

/// `text` without a leading `word` that ends at a word boundary.
fn strip_prefix_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let after = text.strip_prefix(word)?;
    match after.chars().next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => None,
        _ => Some(after),
    }
}

/// The index of the `)` closing an already opened parenthesis.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Runs the SQLite half of a multi-statement operation atomically: inside the caller's transaction
/// as a savepoint, or as its own transaction on a plain connection.
pub async fn lite_tx(c: &mut SqliteConnection) -> Result<sqlx::Transaction<'_, Sqlite>> {
    Ok(c.begin().await?)
}

#[cfg(test)]
mod tests {
    use super::to_sqlite;

    #[test]
    fn translates_the_postgres_forms_the_store_uses() {
        assert_eq!(
            to_sqlite("SELECT id FROM runs WHERE id = $1 FOR UPDATE"),
            "SELECT id FROM runs WHERE id = $1 "
        );
        assert_eq!(
            to_sqlite("SELECT 1 FROM t LIMIT $2 FOR UPDATE SKIP LOCKED)"),
            "SELECT 1 FROM t LIMIT $2 )"
        );
        assert_eq!(to_sqlite("x FOR UPDATE OF d"), "x ");
        assert_eq!(
            to_sqlite("($2::uuid IS NULL OR a = $2) AND payload::text ILIKE $3"),
            "($2 IS NULL OR a = $2) AND payload LIKE $3"
        );
        assert_eq!(
            to_sqlite(
                "SET updated_at = now() WHERE t < now() - make_interval(secs => COALESCE($5::int, 0) / 1000.0)"
            ),
            "SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now') WHERE t < \
             strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', -(COALESCE($5, 0) / 1000.0) || ' seconds')"
        );
        assert_eq!(to_sqlite("'a::b now()' || x::text"), "'a::b now()' || x");
    }
}
