//! Steps: the journal of a run. One row per applied step; its primary key (run, token, seq) is what
//! makes applying a step exactly-once.

use crate::Conn;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Step {
    pub run_id: Uuid,
    pub token: i32,
    pub seq: i32,
    pub node_id: Uuid,
    pub node_name: String,
    pub node_type: String,
    pub event: String,
    pub outcome: String,
    pub state: Option<String>,
    pub variables: Json<Value>,
    pub effects: Json<Value>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut Conn, s: &Step) -> Result<()> {
    crate::on!(conn, |db, dialect| {
        sqlx::query(dialect.sql("INSERT INTO steps (run_id, token, seq, node_id, node_name, node_type, event, outcome, state, variables,
                            effects, error, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",))
    .bind(s.run_id)
    .bind(s.token)
    .bind(s.seq)
    .bind(s.node_id)
    .bind(&s.node_name)
    .bind(&s.node_type)
    .bind(&s.event)
    .bind(&s.outcome)
    .bind(&s.state)
    .bind(&s.variables)
    .bind(&s.effects)
    .bind(&s.error)
    .bind(s.started_at)
    // Bound rather than `now()`: Postgres' now() is the transaction's start, before `started_at`.
    .bind(s.finished_at)
    .execute(&mut *db)
    .await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub async fn list(conn: &mut Conn, run_id: Uuid) -> Result<Vec<Step>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT run_id, token, seq, node_id, node_name, node_type, event, outcome, state, variables, effects, error,
                started_at, finished_at
         FROM steps WHERE run_id = $1 ORDER BY finished_at, token, seq",))
    .bind(run_id)
    .fetch_all(&mut *db)
    .await
    })?)
}
