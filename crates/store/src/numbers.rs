//! Phone numbers attached to PHLOs: an incoming call or SMS to a number starts its PHLO.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Number {
    pub number: String,
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Attaches (or re-attaches) a number to a PHLO of the account. `None` when another account owns it.
pub async fn attach(
    conn: &mut Conn,
    number: &str,
    account_id: Uuid,
    phlo_id: Uuid,
) -> Result<Option<Number>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "INSERT INTO numbers (number, account_id, phlo_id) VALUES ($1, $2, $3)
         ON CONFLICT (number) DO UPDATE SET phlo_id = $3 WHERE numbers.account_id = $2
         RETURNING number, account_id, phlo_id, created_at",
        )
    )
    .bind(number)
    .bind(account_id)
    .bind(phlo_id)
    .fetch_optional(&mut *db)
    .await)?)
}

pub async fn detach(conn: &mut Conn, number: &str, account_id: Uuid) -> Result<bool> {
    let done = crate::on!(conn, |db, dialect| sqlx::query(
        dialect.sql("DELETE FROM numbers WHERE number = $1 AND account_id = $2")
    )
    .bind(number)
    .bind(account_id)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

pub async fn list(conn: &mut Conn, account_id: Uuid) -> Result<Vec<Number>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT number, account_id, phlo_id, created_at FROM numbers WHERE account_id = $1 ORDER BY number",))
    .bind(account_id)
    .fetch_all(&mut *db)
    .await
    })?)
}

/// Who answers calls and messages to `number` (carrier webhooks carry no account).
pub async fn route(conn: &mut Conn, number: &str) -> Result<Option<Number>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect
            .sql("SELECT number, account_id, phlo_id, created_at FROM numbers WHERE number = $1",)
    )
    .bind(number)
    .fetch_optional(&mut *db)
    .await)?)
}
