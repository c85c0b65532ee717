//! Durable timers of waits. A timer names the wait it belongs to; when it fires the worker checks that
//! the token still waits on it, so a timer that lost the race to a real event does nothing.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Timer {
    pub run_id: Uuid,
    pub token: i32,
    pub wait_id: i32,
    pub fire_at: DateTime<Utc>,
}

pub async fn set(conn: &mut Conn, t: &Timer) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "INSERT INTO timers (run_id, token, wait_id, fire_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run_id, token, wait_id) DO UPDATE SET fire_at = $4",
    ))
    .bind(t.run_id)
    .bind(t.token)
    .bind(t.wait_id)
    .bind(t.fire_at)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn clear(conn: &mut Conn, run_id: Uuid, token: i32, wait_id: i32) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "DELETE FROM timers WHERE run_id = $1 AND token = $2 AND wait_id = $3"
    ))
    .bind(run_id)
    .bind(token)
    .bind(wait_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn clear_run(conn: &mut Conn, run_id: Uuid) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(
        dialect.sql("DELETE FROM timers WHERE run_id = $1")
    )
    .bind(run_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Claims and deletes due timers in one statement; the caller enqueues their events in the same
/// transaction, so a timer fires exactly once or (on rollback) stays.
pub async fn take_due(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<Timer>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "DELETE FROM timers WHERE (run_id, token, wait_id) IN (
             SELECT run_id, token, wait_id FROM timers WHERE fire_at <= $1 ORDER BY fire_at LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING run_id, token, wait_id, fire_at",
        )
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *db)
    .await)?)
}
