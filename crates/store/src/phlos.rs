//! PHLOs and their immutable revisions. Updating a PHLO adds a revision and makes it current; rolling
//! back makes an earlier revision current again. Runs record the revision they started on.

use crate::Conn;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Phlo {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub revision: i32,
    pub latest_revision: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Revision {
    pub phlo_id: Uuid,
    pub revision: i32,
    pub definition: Json<Value>,
    pub created_at: DateTime<Utc>,
}

pub async fn create(
    conn: &mut Conn,
    id: Uuid,
    account_id: Uuid,
    name: &str,
    definition: &Value,
) -> Result<Phlo> {
    let phlo: Phlo = crate::on!(&mut *conn, |db, dialect| {
        sqlx::query_as(dialect.sql("INSERT INTO phlos (id, account_id, name, revision, latest_revision) VALUES ($1, $2, $3, 1, 1)
         RETURNING id, account_id, name, revision, latest_revision, created_at, updated_at",))
    .bind(id)
    .bind(account_id)
    .bind(name)
    .fetch_one(&mut *db)
    .await
    })?;
    insert_revision(conn, id, 1, definition).await?;
    Ok(phlo)
}

async fn insert_revision(
    conn: &mut Conn,
    phlo_id: Uuid,
    revision: i32,
    definition: &Value,
) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "INSERT INTO phlo_revisions (phlo_id, revision, definition) VALUES ($1, $2, $3)"
    ))
    .bind(phlo_id)
    .bind(revision)
    .bind(crate::stored::Stored(definition))
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A PHLO of this account; `None` for unknown ids and for other accounts' PHLOs alike.
pub async fn get(conn: &mut Conn, account_id: Uuid, id: Uuid) -> Result<Option<Phlo>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "SELECT id, account_id, name, revision, latest_revision, created_at, updated_at
         FROM phlos WHERE id = $1 AND account_id = $2",
        )
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?)
}

/// The account's PHLOs, newest first, `limit` at a time after the `before` cursor (created_at, id).
pub async fn list(
    conn: &mut Conn,
    account_id: Uuid,
    limit: i64,
    before: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<Phlo>> {
    let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT id, account_id, name, revision, latest_revision, created_at, updated_at FROM phlos
         WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4",))
    .bind(account_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *db)
    .await
    })?)
}

/// Saves `definition` as a new revision and makes it current. Locks the PHLO row so concurrent updates
/// get consecutive revision numbers.
pub async fn update(
    conn: &mut Conn,
    account_id: Uuid,
    id: Uuid,
    name: &str,
    definition: &Value,
) -> Result<Option<Phlo>> {
    let next: Option<(i32,)> = crate::on!(&mut *conn, |db, dialect| sqlx::query_as(dialect.sql(
        "SELECT latest_revision + 1 FROM phlos WHERE id = $1 AND account_id = $2 FOR UPDATE",
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?;
    let Some((revision,)) = next else {
        return Ok(None);
    };
    insert_revision(conn, id, revision, definition).await?;
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("UPDATE phlos SET name = $2, revision = $3, latest_revision = $3, updated_at = now()
         WHERE id = $1 RETURNING id, account_id, name, revision, latest_revision, created_at, updated_at",))
    .bind(id)
    .bind(name)
    .bind(revision)
    .fetch_optional(&mut *db)
    .await
    })?)
}

/// Makes an existing revision current again; `None` when the PHLO or the revision does not exist.
pub async fn set_revision(
    conn: &mut Conn,
    account_id: Uuid,
    id: Uuid,
    revision: i32,
    name: &str,
) -> Result<Option<Phlo>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "UPDATE phlos SET revision = $3, name = $4, updated_at = now()
         WHERE id = $1 AND account_id = $2
           AND EXISTS (SELECT 1 FROM phlo_revisions WHERE phlo_id = $1 AND revision = $3)
         RETURNING id, account_id, name, revision, latest_revision, created_at, updated_at",
        )
    )
    .bind(id)
    .bind(account_id)
    .bind(revision)
    .bind(name)
    .fetch_optional(&mut *db)
    .await)?)
}

pub async fn revision(conn: &mut Conn, phlo_id: Uuid, revision: i32) -> Result<Option<Revision>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT phlo_id, revision, definition, created_at FROM phlo_revisions WHERE phlo_id = $1 AND revision = $2",))
    .bind(phlo_id)
    .bind(revision)
    .fetch_optional(&mut *db)
    .await
    })?)
}

pub async fn revisions(conn: &mut Conn, phlo_id: Uuid) -> Result<Vec<Revision>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT phlo_id, revision, definition, created_at FROM phlo_revisions WHERE phlo_id = $1 ORDER BY revision DESC",))
    .bind(phlo_id)
    .fetch_all(&mut *db)
    .await
    })?)
}
