//! Fresh, migrated databases for tests: one per test, so tests never see each other's rows.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

use crate::{Conn, Pool};

/// Admin URL of the test server; override with `PHLO_TEST_DATABASE_URL`.
pub fn admin_url() -> String {
    std::env::var("PHLO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates `phlo_test_<unix seconds>_<random>`, migrates it and returns its URL. Databases older than an
/// hour from earlier runs are dropped on the way, so crashed test runs do not accumulate.
pub async fn fresh_database() -> crate::Result<String> {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let old: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'phlo\\_test\\_%'")
            .fetch_all(&mut conn)
            .await?;
    for (name,) in old {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(now);
        if created + 3600 < now {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
    let name = format!("phlo_test_{now}_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin}/{name}"),
    };
    let pool = crate::connect(&url, 2, 0).await?;
    crate::migrate(&pool).await?;
    pool.close().await;
    Ok(url)
}

/// A pool on a fresh Postgres database.
pub async fn fresh_pool() -> crate::Result<Pool> {
    let url = fresh_database().await?;
    crate::connect(&url, 10, 0).await
}

/// A pool on a fresh, migrated in-memory SQLite database (the `phlo dev` store).
pub async fn fresh_sqlite() -> crate::Result<Pool> {
    let pool = crate::connect("sqlite::memory:", 1, 0).await?;
    crate::migrate(&pool).await?;
    Ok(pool)
}

/// Both backends, for tests that must hold on each.
pub async fn fresh_pools() -> crate::Result<[Pool; 2]> {
    Ok([fresh_pool().await?, fresh_sqlite().await?])
}

/// An account and a PHLO of it (revision 1), inserted directly: the rows most store tests hang theirs on.
pub async fn account_and_phlo(conn: &mut Conn) -> crate::Result<(uuid::Uuid, uuid::Uuid)> {
    let (account, phlo) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "INSERT INTO accounts (id, auth_id, token_hash) VALUES ($1, $2, $3)"
    ))
    .bind(account)
    .bind(account.to_string())
    .bind(&[0u8][..])
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    crate::on!(conn, |db, dialect| {
        sqlx::query(dialect.sql(
        "INSERT INTO phlos (id, account_id, name, revision, latest_revision) VALUES ($1, $2, 'p', 1, 1)"
    ))
    .bind(phlo)
    .bind(account)
    .execute(&mut *db)
    .await.map(|r| r.rows_affected())
    })?;
    Ok((account, phlo))
}

/// Runs `test` on a fresh database of each backend in turn (Postgres, then SQLite); a failure names the
/// backend it failed on. The test gets the pool: on SQLite it holds one connection, so the test must
/// not hold a connection while a store function it calls acquires another (acquire one per statement).
pub async fn on_both<F, Fut>(test: F)
where
    F: Fn(Pool) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    #[allow(clippy::expect_used)]
    let pools = fresh_pools().await.expect("fresh test databases");
    for pool in pools {
        let backend = pool.backend();
        let done = tokio::spawn(test(pool.clone())).await;
        pool.close().await;
        if let Err(e) = done {
            match e.try_into_panic() {
                Ok(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    panic!("on {backend:?}: {message}");
                }
                Err(e) => panic!("on {backend:?}: {e}"),
            }
        }
    }
}
