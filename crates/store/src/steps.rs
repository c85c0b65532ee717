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

/// The rows one message's steps write, as `INSERT INTO steps … VALUES (…), (…)` on a `QueryBuilder`.
macro_rules! push_step_rows {
    ($q:expr, $steps:expr) => {{
        $q.push(
            "INSERT INTO steps (run_id, token, seq, node_id, node_name, node_type, event, outcome, state,
                                variables, effects, error, started_at, finished_at) ",
        );
        $q.push_values($steps, |mut row, s| {
            row.push_bind(s.run_id)
                .push_bind(s.token)
                .push_bind(s.seq)
                .push_bind(s.node_id)
                .push_bind(&s.node_name)
                .push_bind(&s.node_type)
                .push_bind(&s.event)
                .push_bind(&s.outcome)
                .push_bind(&s.state)
                .push_bind($crate::stored::Stored(&s.variables))
                .push_bind($crate::stored::Stored(&s.effects))
                .push_bind(s.error.as_deref().map($crate::stored::text))
                .push_bind(s.started_at)
                // Bound rather than `now()`: Postgres' now() is the transaction's start, before
                // `started_at`.
                .push_bind(s.finished_at);
        });
    }};
}
pub(crate) use push_step_rows;

/// Rows a statement writes at most: 14 binds a row, and Postgres takes 65,535 binds a statement,
/// SQLite 32,766.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Writes the steps one message applied, in as few statements as the bind limits allow (one, normally).
pub async fn insert(conn: &mut Conn, steps: &[Step]) -> Result<()> {
    for chunk in steps.chunks(ROWS_PER_STATEMENT) {
        crate::on!(&mut *conn, |db, _dialect| {
            let mut q = sqlx::QueryBuilder::new("");
            push_step_rows!(q, chunk);
            q.build().execute(&mut *db).await.map(|r| r.rows_affected())
        })?;
    }
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
