//! Members of multiparty calls and conference bridges, for the trigger API.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: i64,
    pub phlo_id: Uuid,
    pub node_id: Uuid,
    pub node_type: String,
    pub room: String,
    pub run_id: Uuid,
    pub address: String,
    pub role: String,
    pub call_uuid: Option<String>,
    pub member_id: Option<String>,
    pub state: String,
    pub on_join: Option<String>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! member_columns {
    () => {
        "id, phlo_id, node_id, node_type, room, run_id, address, role, call_uuid, member_id, state, on_join, updated_at"
    };
}

pub struct NewMember<'a> {
    pub phlo_id: Uuid,
    pub node_id: Uuid,
    pub node_type: &'a str,
    pub room: &'a str,
    pub run_id: Uuid,
    pub address: &'a str,
    pub role: &'a str,
    pub call_uuid: Option<&'a str>,
    pub member_id: Option<&'a str>,
    pub state: &'a str,
    pub on_join: Option<&'a str>,
}

/// Records a member's latest state in a room: one row per (room, address) that is still present.
pub async fn upsert(conn: &mut Conn, m: &NewMember<'_>) -> Result<Member> {
    let existing: Option<(i64,)> = crate::on!(&mut *conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT id FROM room_members WHERE room = $1 AND address = $2 AND state <> 'left' ORDER BY updated_at DESC LIMIT 1",))
    .bind(m.room)
    .bind(m.address)
    .fetch_optional(&mut *db)
    .await
    })?;
    let row = match existing {
        Some((id,)) => crate::on!(conn, |db, dialect| {
            sqlx::query_as(dialect.sql(concat!(
            "UPDATE room_members SET role = $2, call_uuid = coalesce($3, call_uuid), member_id = coalesce($4, member_id),
                 state = $5, on_join = coalesce($6, on_join), updated_at = now()
             WHERE id = $1 RETURNING ",
            member_columns!()
        )))
        .bind(id)
        .bind(m.role)
        .bind(m.call_uuid)
        .bind(m.member_id)
        .bind(m.state)
        .bind(m.on_join)
        .fetch_one(&mut *db)
        .await
        })?,
        None => crate::on!(conn, |db, dialect| {
            sqlx::query_as(dialect.sql(concat!(
            "INSERT INTO room_members (phlo_id, node_id, node_type, room, run_id, address, role, call_uuid, member_id, state, on_join)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
            member_columns!()
        )))
        .bind(m.phlo_id)
        .bind(m.node_id)
        .bind(m.node_type)
        .bind(m.room)
        .bind(m.run_id)
        .bind(m.address)
        .bind(m.role)
        .bind(m.call_uuid)
        .bind(m.member_id)
        .bind(m.state)
        .bind(m.on_join)
        .fetch_one(&mut *db)
        .await
        })?,
    };
    Ok(row)
}

/// The member `address` of a node's room, the most recent that has not left.
pub async fn find(
    conn: &mut Conn,
    phlo_id: Uuid,
    node_id: Uuid,
    address: &str,
) -> Result<Option<Member>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
        "SELECT ",
        member_columns!(),
        " FROM room_members WHERE phlo_id = $1 AND node_id = $2 AND address = $3 AND state <> 'left'
         ORDER BY updated_at DESC LIMIT 1"
    ))
    )
    .bind(phlo_id)
    .bind(node_id)
    .bind(address)
    .fetch_optional(&mut *db)
    .await)?)
}

/// The member with this call in a room (carrier events name calls, not addresses).
pub async fn by_call(conn: &mut Conn, room: &str, call_uuid: &str) -> Result<Option<Member>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            member_columns!(),
            " FROM room_members WHERE room = $1 AND call_uuid = $2 ORDER BY updated_at DESC LIMIT 1"
        ))
    )
    .bind(room)
    .bind(call_uuid)
    .fetch_optional(&mut *db)
    .await)?)
}

/// Everyone present in a room.
pub async fn present(conn: &mut Conn, room: &str) -> Result<Vec<Member>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            member_columns!(),
            " FROM room_members WHERE room = $1 AND state <> 'left' ORDER BY id"
        ))
    )
    .bind(room)
    .fetch_all(&mut *db)
    .await)?)
}

pub async fn set_state(conn: &mut Conn, id: i64, state: &str, on_join: Option<&str>) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "UPDATE room_members SET state = $2, on_join = $3, updated_at = now() WHERE id = $1",
    ))
    .bind(id)
    .bind(state)
    .bind(on_join)
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every member a run's rooms have had, for the run view.
pub async fn of_run(conn: &mut Conn, run_id: Uuid) -> Result<Vec<Member>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            member_columns!(),
            " FROM room_members WHERE run_id = $1 ORDER BY id"
        ))
    )
    .bind(run_id)
    .fetch_all(&mut *db)
    .await)?)
}
