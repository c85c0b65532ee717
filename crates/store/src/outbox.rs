//! The outbox: messages committed in the same transaction as the state change that caused them.

use crate::Conn;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub subject: String,
    pub msg_id: String,
    pub payload: Vec<u8>,
    /// The writer's W3C trace context, sent as the `traceparent` header.
    pub traceparent: Option<String>,
}

/// A message to write to the outbox, for statements that write it beside other rows.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub subject: &'a str,
    pub msg_id: &'a str,
    pub payload: &'a [u8],
    pub traceparent: Option<&'a str>,
}

pub async fn insert(
    conn: &mut Conn,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
    traceparent: Option<&str>,
) -> Result<i64> {
    let (id,): (i64,) = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("INSERT INTO outbox (subject, msg_id, payload, traceparent) VALUES ($1, $2, $3, $4) RETURNING id",))
    .bind(subject)
    .bind(msg_id)
    .bind(payload)
    .bind(traceparent)
    .fetch_one(&mut *db)
    .await
    })?;
    Ok(id)
}

/// Deletes messages JetStream has acknowledged.
pub async fn delete(conn: &mut Conn, ids: &[i64]) -> Result<()> {
    match conn.raw() {
        crate::db::Raw::Postgres(db) => {
            sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
                .bind(ids)
                .execute(&mut *db)
                .await?;
        }
        crate::db::Raw::Sqlite(db) => {
            // No arrays in SQLite: the ids as a JSON array.
            let ids = serde_json::to_string(ids)?;
            sqlx::query("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each($1))")
                .bind(ids)
                .execute(&mut *db)
                .await?;
        }
    }
    Ok(())
}

/// Claims messages older than `min_age_secs` that nobody published (their writer crashed or lost NATS).
/// `SKIP LOCKED` lets every replica run a relay without two of them claiming the same rows.
pub async fn claim_stale(conn: &mut Conn, min_age_secs: f64, limit: i64) -> Result<Vec<Message>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "SELECT id, subject, msg_id, payload, traceparent FROM outbox
         WHERE created_at < now() - make_interval(secs => $1)
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
    )
    .bind(min_age_secs)
    .bind(limit)
    .fetch_all(&mut *db)
    .await)?)
}

/// Messages waiting to be published, for the backlog gauge.
pub async fn backlog(conn: &mut Conn) -> Result<i64> {
    let (n,): (i64,) = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql("SELECT count(*) FROM outbox")
    )
    .fetch_one(&mut *db)
    .await)?;
    Ok(n)
}
