//! The services' Postgres pools: `PHLO_DB_POOL_MIN` connections are open before any load.

use std::time::{Duration, Instant};

use crate::support::Stack;

/// Connections to the stack's database, other than the one asking.
async fn backends(pool: &sqlx::PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity");
    n
}

/// Opening a connection costs Postgres a process; the bench saw about 20 open at once stall every run
/// for 300 ms (docs/benchmarks.md, run 7). With `PHLO_DB_POOL_MIN=6` a gateway and a worker hold 12
/// before the first request, where by default they hold only what start-up used.
#[tokio::test(flavor = "multi_thread")]
async fn db_pool_min_connections_are_open_before_any_load() {
    let mut idle = Stack::start(1).await;
    let pool = sqlx::PgPool::connect(&idle.db_url).await.expect("pool");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_default = backends(&pool).await;
    pool.close().await;
    idle.cleanup().await;
    assert!(by_default < 12, "a default idle stack holds {by_default}");

    let mut stack = Stack::start_with(1, &[("PHLO_DB_POOL", "8"), ("PHLO_DB_POOL_MIN", "6")]).await;
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("pool");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = backends(&pool).await;
    while held < 12 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = backends(&pool).await;
    }
    // 6 each at least; at most the two pools' maximum (8 each).
    assert!((12..=16).contains(&held), "gateway and worker hold {held}");
    pool.close().await;
    stack.cleanup().await;
}
