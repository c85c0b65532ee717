//! Calls runs are on, and the XML instruction each call runs next.

use crate::Conn;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Call {
    pub call_uuid: String,
    pub run_id: Uuid,
    pub token: i32,
    pub direction: String,
    pub from_number: String,
    pub to_number: String,
    pub status: String,
    pub hangup_cause: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub struct NewCall<'a> {
    pub call_uuid: &'a str,
    pub run_id: Uuid,
    pub token: i32,
    pub direction: &'a str,
    pub from_number: &'a str,
    pub to_number: &'a str,
}

/// Records a call, or hands an existing one to another token (an answered outbound leg joins its token).
pub async fn upsert(conn: &mut Conn, c: &NewCall<'_>) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "INSERT INTO calls (call_uuid, run_id, token, direction, from_number, to_number, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'in-progress')
         ON CONFLICT (call_uuid) DO UPDATE SET run_id = $2, token = $3",
    ))
    .bind(c.call_uuid)
    .bind(c.run_id)
    .bind(c.token)
    .bind(c.direction)
    .bind(c.from_number)
    .bind(c.to_number)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get(conn: &mut Conn, call_uuid: &str) -> Result<Option<Call>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT call_uuid, run_id, token, direction, from_number, to_number, status, hangup_cause, created_at, ended_at
         FROM calls WHERE call_uuid = $1",))
    .bind(call_uuid)
    .fetch_optional(&mut *db)
    .await
    })?)
}

/// Marks a call ended; returns the call as it was if it had not ended before.
pub async fn end(conn: &mut Conn, call_uuid: &str, cause: Option<&str>) -> Result<Option<Call>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("UPDATE calls SET status = 'completed', hangup_cause = $2, ended_at = now()
         WHERE call_uuid = $1 AND status <> 'completed'
         RETURNING call_uuid, run_id, token, direction, from_number, to_number, status, hangup_cause, created_at, ended_at",))
    .bind(call_uuid)
    .bind(cause)
    .fetch_optional(&mut *db)
    .await
    })?)
}

/// Live calls of a run (to hang up when the run ends).
pub async fn live_of_run(conn: &mut Conn, run_id: Uuid) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql("SELECT call_uuid FROM calls WHERE run_id = $1 AND status <> 'completed'")
    )
    .bind(run_id)
    .fetch_all(&mut *db)
    .await)?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Instruction {
    pub call_uuid: String,
    pub version: i64,
    pub run_id: Uuid,
    pub token: i32,
    pub wait_id: Option<i32>,
    pub action: Option<Json<Value>>,
    pub xml: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewInstruction<'a> {
    pub call_uuid: &'a str,
    pub run_id: Uuid,
    pub token: i32,
    pub wait_id: Option<i32>,
    pub action: Option<&'a Value>,
    pub xml: &'a str,
}

/// Sets the XML the call runs next; its version is one more than the previous instruction's.
pub async fn instruct(conn: &mut Conn, i: &NewInstruction<'_>) -> Result<i64> {
    let (version,): (i64,) = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("INSERT INTO call_instructions (call_uuid, version, run_id, token, wait_id, action, xml)
         VALUES ($1, 1, $2, $3, $4, $5, $6)
         ON CONFLICT (call_uuid) DO UPDATE SET version = call_instructions.version + 1, run_id = $2, token = $3,
             wait_id = $4, action = $5, xml = $6, created_at = now()
         RETURNING version",))
    .bind(i.call_uuid)
    .bind(i.run_id)
    .bind(i.token)
    .bind(i.wait_id)
    .bind(i.action.as_ref().map(crate::stored::Stored))
    .bind(i.xml)
    .fetch_one(&mut *db)
    .await
    })?;
    Ok(version)
}

pub async fn instruction(conn: &mut Conn, call_uuid: &str) -> Result<Option<Instruction>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT call_uuid, version, run_id, token, wait_id, action, xml, created_at FROM call_instructions
         WHERE call_uuid = $1",))
    .bind(call_uuid)
    .fetch_optional(&mut *db)
    .await
    })?)
}

/// Records that a carrier request is being made; `false` when it was already attempted.
pub async fn claim_request(conn: &mut Conn, msg_id: &str) -> Result<bool> {
    let done = crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "INSERT INTO carrier_requests (msg_id) VALUES ($1) ON CONFLICT DO NOTHING"
    ))
    .bind(msg_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Gives a claimed request back, when the carrier said for sure that it did not take it (a 5xx).
pub async fn release_request(conn: &mut Conn, msg_id: &str) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(
        dialect.sql("DELETE FROM carrier_requests WHERE msg_id = $1")
    )
    .bind(msg_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
