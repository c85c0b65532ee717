//! Tokens: positions in a run's graph, each with its own context (the variables it has seen and the call
//! it is on). A token is `ready` (a step message is due), `waiting` (parked on `wait_id`) or `ended`.

use crate::Conn;
use chrono::{DateTime, Utc};
use phlo_flow::{Context, Wait};
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Token {
    pub run_id: Uuid,
    pub token: i32,
    pub node_id: Uuid,
    pub status: String,
    pub seq: i32,
    pub wait_id: Option<i32>,
    pub wait: Option<Json<Wait>>,
    pub context: Json<Context>,
    pub repeats: i32,
    pub ended_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The columns a token is written with, in [`save`]'s bind order.
macro_rules! token_insert_columns {
    () => {
        "(run_id, token, node_id, status, seq, wait_id, wait, context, repeats, ended_reason)"
    };
}
pub(crate) use token_insert_columns;

/// Binds a token's fields in [`token_insert_columns!`]' order: `$bind` is `bind` for a query,
/// `push_bind` for a `QueryBuilder`'s separated list.
macro_rules! bind_token {
    ($q:expr, $bind:ident, $t:expr) => {
        $q.$bind($t.run_id)
            .$bind($t.token)
            .$bind($t.node_id)
            .$bind(&$t.status)
            .$bind($t.seq)
            .$bind($t.wait_id)
            .$bind($t.wait.as_ref().map($crate::stored::Stored))
            .$bind($crate::stored::Stored(&$t.context))
            .$bind($t.repeats)
            .$bind($t.ended_reason.as_deref().map($crate::stored::text))
    };
}
pub(crate) use bind_token;

/// Saving a token overwrites the stored one.
macro_rules! token_upsert {
    () => {
        "ON CONFLICT (run_id, token) DO UPDATE SET node_id = excluded.node_id, status = excluded.status,
             seq = excluded.seq, wait_id = excluded.wait_id, wait = excluded.wait, context = excluded.context,
             repeats = excluded.repeats, ended_reason = excluded.ended_reason, updated_at = now()"
    };
}
pub(crate) use token_upsert;

macro_rules! token_columns {
    () => {
        "run_id, token, node_id, status, seq, wait_id, wait, context, repeats, ended_reason, updated_at"
    };
}

/// Inserts or overwrites the token: the worker computes the whole new row under the run lock.
pub async fn save(conn: &mut Conn, t: &Token) -> Result<()> {
    crate::on!(conn, |db, dialect| {
        bind_token!(
            sqlx::query(dialect.sql(concat!(
                "INSERT INTO tokens ",
                token_insert_columns!(),
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ",
                token_upsert!()
            ))),
            bind,
            t
        )
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub async fn get(conn: &mut Conn, run_id: Uuid, token: i32) -> Result<Option<Token>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE run_id = $1 AND token = $2"
        ))
    )
    .bind(run_id)
    .bind(token)
    .fetch_optional(&mut *db)
    .await)?)
}

pub async fn list(conn: &mut Conn, run_id: Uuid) -> Result<Vec<Token>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE run_id = $1 ORDER BY token"
        ))
    )
    .bind(run_id)
    .fetch_all(&mut *db)
    .await)?)
}

/// Ends every live token of a run (cancel, lifetime guard) and returns how many there were.
pub async fn end_all(conn: &mut Conn, run_id: Uuid, reason: &str) -> Result<u64> {
    let done = crate::on!(conn, |db, dialect| {
        sqlx::query(dialect.sql(
        "UPDATE tokens SET status = 'ended', ended_reason = $2, wait_id = NULL, updated_at = now()
         WHERE run_id = $1 AND status <> 'ended'",
    ))
    .bind(run_id)
    .bind(crate::stored::text(reason))
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(done)
}

/// Ready tokens whose step message has not been applied for longer than `cutoff` allows: the message
/// may have been lost, so the reconciler publishes it again (the seq makes that safe).
pub async fn stale_ready(
    conn: &mut Conn,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, i32, i32)>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT run_id, token, seq FROM tokens WHERE status = 'ready' AND updated_at < $1 ORDER BY updated_at LIMIT $2",))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(&mut *db)
    .await
    })?)
}

/// Marks reconciled tokens as freshly touched so the next pass does not republish them at once.
pub async fn touch(conn: &mut Conn, run_id: Uuid, token: i32) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "UPDATE tokens SET updated_at = now() WHERE run_id = $1 AND token = $2"
    ))
    .bind(run_id)
    .bind(token)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
