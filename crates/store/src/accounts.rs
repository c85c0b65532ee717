//! Accounts: created by the operator; the auth token is stored as its SHA-256 only.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub auth_id: String,
    pub token_hash: Vec<u8>,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn create(
    conn: &mut Conn,
    id: Uuid,
    auth_id: &str,
    token_hash: &[u8],
    name: &str,
) -> Result<Account> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "INSERT INTO accounts (id, auth_id, token_hash, name) VALUES ($1, $2, $3, $4)
         RETURNING id, auth_id, token_hash, name, created_at",
        )
    )
    .bind(id)
    .bind(auth_id)
    .bind(token_hash)
    .bind(name)
    .fetch_one(&mut *db)
    .await)?)
}

pub async fn find_by_auth_id(conn: &mut Conn, auth_id: &str) -> Result<Option<Account>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "SELECT id, auth_id, token_hash, name, created_at FROM accounts WHERE auth_id = $1",
        )
    )
    .bind(auth_id)
    .fetch_optional(&mut *db)
    .await)?)
}
