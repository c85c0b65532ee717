//! Counters of Counter nodes. The increment runs in the step's own transaction, so a step that is
//! applied counts once and a step that is rolled back (or deduplicated) counts never.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Counter {
    pub owner_id: Uuid,
    pub node_id: Uuid,
    pub scope: String,
    pub value: i64,
    pub updated_at: DateTime<Utc>,
}

/// Adds one and returns the new value. `owner_id` is the run (scope `run`) or the PHLO (scope `phlo`).
pub async fn increment(conn: &mut Conn, owner_id: Uuid, node_id: Uuid, scope: &str) -> Result<i64> {
    let (value,): (i64,) = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("INSERT INTO counters (owner_id, node_id, scope, value) VALUES ($1, $2, $3, 1)
         ON CONFLICT (owner_id, node_id) DO UPDATE SET value = counters.value + 1, updated_at = now()
         RETURNING value",))
    .bind(owner_id)
    .bind(node_id)
    .bind(scope)
    .fetch_one(&mut *db)
    .await
    })?;
    Ok(value)
}

pub async fn list(conn: &mut Conn, owner_id: Uuid) -> Result<Vec<Counter>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT owner_id, node_id, scope, value, updated_at FROM counters WHERE owner_id = $1 ORDER BY node_id",))
    .bind(owner_id)
    .fetch_all(&mut *db)
    .await
    })?)
}

/// Resets one counter (or all of the owner's with `None`) to zero by deleting it; returns how many.
pub async fn reset(conn: &mut Conn, owner_id: Uuid, node_id: Option<Uuid>) -> Result<u64> {
    let done = crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "DELETE FROM counters WHERE owner_id = $1 AND ($2::uuid IS NULL OR node_id = $2)",
    ))
    .bind(owner_id)
    .bind(node_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done)
}
