//! Runs: one row per PHLO execution, locked (`FOR UPDATE`) by every step so that two events of one run
//! never interleave.

use crate::Conn;
use chrono::{DateTime, Utc};
use phlo_flow::Trigger;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;
use crate::tokens::Token;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub id: Uuid,
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    pub revision: i32,
    pub status: String,
    pub trigger_type: String,
    pub trigger: Json<Trigger>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub error: Option<String>,
    pub steps: i32,
    pub next_token: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub struct NewRun<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    pub revision: i32,
    /// api, call or sms.
    pub trigger_type: &'a str,
    pub trigger: &'a Trigger,
    pub from_number: Option<&'a str>,
    pub to_number: Option<&'a str>,
    /// `active`, or `queued` for a run that waits for a free slot of its account (see [`crate::admission`]).
    pub status: &'a str,
}

macro_rules! run_columns {
    () => {
        "id, account_id, phlo_id, revision, status, trigger_type, trigger, from_number, to_number, \
     error, steps, next_token, created_at, updated_at, ended_at"
    };
}

pub async fn create(conn: &mut Conn, run: &NewRun<'_>) -> Result<()> {
    crate::on!(conn, |db, dialect| {
        sqlx::query(dialect.sql("INSERT INTO runs (id, account_id, phlo_id, revision, status, trigger_type, trigger, from_number, to_number)
         VALUES ($1, $2, $3, $4, $9, $5, $6, $7, $8)",))
    .bind(run.id)
    .bind(run.account_id)
    .bind(run.phlo_id)
    .bind(run.revision)
    .bind(run.trigger_type)
    .bind(crate::stored::Stored(&run.trigger))
    .bind(run.from_number)
    .bind(run.to_number)
    .bind(run.status)
    .execute(&mut *db)
    .await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Starts a run at once if it may: when its revision is the PHLO's current one and the account has
/// nobody queued and a free slot ([`crate::admission::check_start`]), writes the run (`active`), its
/// first token and the step message that moves the token. One statement on Postgres (one round trip,
/// and its own transaction on a plain connection); on SQLite several: call it in a transaction
/// ([`crate::Pool::begin_atomic`]). Returns the outbox row's id, `None` when the run may not start so.
pub async fn start(
    conn: &mut Conn,
    run: &NewRun<'_>,
    token: &Token,
    message: &crate::outbox::NewMessage<'_>,
    default_cap: i64,
) -> Result<Option<i64>> {
    let db = match conn.raw() {
        crate::db::Raw::Postgres(db) => db,
        crate::db::Raw::Sqlite(_) => {
            let check =
                crate::admission::check_start(conn, run.account_id, run.phlo_id, default_cap)
                    .await?;
            if !check.is_some_and(|c| c.at_once && c.revision == run.revision) {
                return Ok(None);
            }
            create(conn, run).await?;
            crate::tokens::save(conn, token).await?;
            let m = message;
            let id =
                crate::outbox::insert(conn, m.subject, m.msg_id, m.payload, m.traceparent).await?;
            return Ok(Some(id));
        }
    };
    let id: Option<(i64,)> = crate::tokens::bind_token!(
        sqlx::query_as(concat!(
        crate::admission::start_check!(),
        ", ok AS (SELECT 1 FROM chk WHERE at_once AND revision = $5),
         r AS (
             INSERT INTO runs (id, account_id, phlo_id, revision, status, trigger_type, trigger, from_number, to_number)
             SELECT $4, $1, $2, $5, $10, $6, $7, $8, $9 FROM ok
         ), t AS (
             INSERT INTO tokens ",
        crate::tokens::token_insert_columns!(),
        " SELECT $11, $12, $13, $14, $15, $16, $17, $18, $19, $20 FROM ok
         )
         INSERT INTO outbox (subject, msg_id, payload, traceparent) SELECT $21, $22, $23, $24 FROM ok
         RETURNING id"
    ))
    .bind(run.account_id)
    .bind(run.phlo_id)
    .bind(default_cap)
    .bind(run.id)
    .bind(run.revision)
    .bind(run.trigger_type)
    .bind(crate::stored::Stored(&run.trigger))
    .bind(run.from_number)
    .bind(run.to_number)
    .bind(run.status),
        bind,
        token
    )
    .bind(message.subject)
    .bind(message.msg_id)
    .bind(message.payload)
    .bind(message.traceparent)
    .fetch_optional(&mut *db)
    .await?;
    Ok(id.map(|(id,)| id))
}

/// A run of this account; `None` for unknown ids and other accounts' runs alike.
pub async fn get(conn: &mut Conn, account_id: Uuid, id: Uuid) -> Result<Option<Run>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1 AND account_id = $2"
        ))
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?)
}

/// Locks the run for the rest of the transaction.
pub async fn lock(conn: &mut Conn, id: Uuid) -> Result<Option<Run>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1 FOR UPDATE"
        ))
    )
    .bind(id)
    .fetch_optional(&mut *db)
    .await)?)
}

/// Locks the run for the rest of the transaction and reads one of its tokens, in one round trip: what
/// every step message starts with.
///
/// The token is locked too, and that is what makes it current. A statement that waited for the run's
/// lock sees the run as the transaction it waited for left it, but any row it only read as of when it
/// started: a token read by a join without a lock came back a step behind after a concurrent message
/// of the same run, and its next step row collided with the one just written (`steps_pkey`). A token
/// that does not exist yet for this statement (another transaction added it) takes two statements:
/// the run's lock, then a fresh read.
pub async fn lock_with_token(
    conn: &mut Conn,
    id: Uuid,
    token: i32,
) -> Result<Option<(Run, Option<Token>)>> {
    use sqlx::{FromRow, Row};
    let locked = crate::on!(&mut *conn, |db, dialect| {
        let row = sqlx::query(dialect.sql(
            "SELECT runs.id, runs.account_id, runs.phlo_id, runs.revision, runs.status, runs.trigger_type,
                    runs.trigger, runs.from_number, runs.to_number, runs.error, runs.steps, runs.next_token,
                    runs.created_at, runs.updated_at, runs.ended_at,
               t.node_id AS t_node_id, t.status AS t_status, t.seq AS t_seq, t.wait_id AS t_wait_id,
               t.wait AS t_wait, t.context AS t_context, t.repeats AS t_repeats,
               t.ended_reason AS t_ended_reason, t.updated_at AS t_updated_at
             FROM runs JOIN tokens t ON t.run_id = runs.id AND t.token = $2
             WHERE runs.id = $1 FOR UPDATE",
        ))
        .bind(id)
        .bind(token)
        .fetch_optional(&mut *db)
        .await?;
        match row {
            None => None,
            Some(row) => Some((
                Run::from_row(&row)?,
                Token {
                    run_id: id,
                    token,
                    node_id: row.try_get("t_node_id")?,
                    status: row.try_get("t_status")?,
                    seq: row.try_get("t_seq")?,
                    wait_id: row.try_get("t_wait_id")?,
                    wait: row.try_get("t_wait")?,
                    context: row.try_get("t_context")?,
                    repeats: row.try_get("t_repeats")?,
                    ended_reason: row.try_get("t_ended_reason")?,
                    updated_at: row.try_get("t_updated_at")?,
                },
            )),
        }
    });
    if let Some((run, token)) = locked {
        return Ok(Some((run, Some(token))));
    }
    let Some(run) = lock(conn, id).await? else {
        return Ok(None);
    };
    Ok(Some((run, crate::tokens::get(conn, id, token).await?)))
}

/// Counts `n` applied steps (a message may apply several consecutive steps of one token).
pub async fn record_steps(conn: &mut Conn, id: Uuid, n: u32) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "UPDATE runs SET steps = steps + $2, updated_at = now() WHERE id = $1"
    ))
    .bind(id)
    .bind(i32::try_from(n).unwrap_or(i32::MAX))
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A run that [`settle`] ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub account_id: Uuid,
    /// `completed`, or `failed` when a step recorded an error ([`set_error`]).
    pub status: String,
    /// Whether the account has runs queued for the slot this one freed.
    pub has_queued: bool,
}

/// The end of a step message's transaction, in one statement on Postgres: writes its step rows and its
/// token (when the caller has not), counts the steps on the run and, when none of the run's tokens is
/// live any more, ends the run. The last step of a run thus updates the run row once, not once for the
/// count and once for the end, and the whole message costs one round trip after its lock.
pub async fn settle(
    conn: &mut Conn,
    id: Uuid,
    steps: &[crate::steps::Step],
    token: Option<&Token>,
) -> Result<Option<Ended>> {
    let db = match conn.raw() {
        crate::db::Raw::Postgres(db) => db,
        crate::db::Raw::Sqlite(_) => {
            if let Some(token) = token {
                crate::tokens::save(conn, token).await?;
            }
            crate::steps::insert(conn, steps).await?;
            return settle_run(conn, id, steps.len()).await;
        }
    };
    // Past one statement's binds, the first rows go on their own (a message applies 16 steps by default).
    let split = steps.len().saturating_sub(crate::steps::ROWS_PER_STATEMENT);
    let (early, last) = steps.split_at(split);
    for chunk in early.chunks(crate::steps::ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::new("");
        crate::steps::push_step_rows!(q, chunk);
        q.build().execute(&mut *db).await?;
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("WITH ");
    if !last.is_empty() {
        q.push("new_steps AS (");
        crate::steps::push_step_rows!(q, last);
        q.push("), ");
    }
    // The statement's subqueries see the tables as they were before it: the token written here is
    // judged by its new status, the run's others as they are.
    let (number, live) = match token {
        Some(t) => {
            q.push(concat!(
                "new_token AS (INSERT INTO tokens ",
                crate::tokens::token_insert_columns!(),
                " VALUES ("
            ));
            crate::tokens::bind_token!(q.separated(", "), push_bind, t);
            q.push(concat!(") ", crate::tokens::token_upsert!(), "), "));
            (t.token, t.status != "ended")
        }
        None => (-1, false),
    };
    q.push("live AS (SELECT ")
        .push_bind(live)
        .push(" OR EXISTS (SELECT 1 FROM tokens t WHERE t.run_id = ")
        .push_bind(id)
        .push(" AND t.token <> ")
        .push_bind(number)
        .push(" AND t.status <> 'ended') AS some_live)
         UPDATE runs SET steps = steps + ")
        .push_bind(i32::try_from(steps.len()).unwrap_or(i32::MAX))
        .push(", updated_at = now(),
             status = CASE WHEN live.some_live THEN status WHEN error IS NULL THEN 'completed' ELSE 'failed' END,
             ended_at = CASE WHEN live.some_live THEN ended_at ELSE now() END
         FROM live WHERE id = ")
        .push_bind(id)
        .push(
            " RETURNING account_id, status,
             status <> 'active'
                 AND EXISTS (SELECT 1 FROM runs q WHERE q.account_id = runs.account_id AND q.status = 'queued')",
        );
    let (account_id, status, has_queued): (Uuid, String, bool) =
        q.build_query_as().fetch_one(&mut *db).await?;
    Ok(ended(account_id, status, has_queued))
}

/// [`settle`]'s count and end, once its rows are written.
async fn settle_run(conn: &mut Conn, id: Uuid, n: usize) -> Result<Option<Ended>> {
    let (account_id, status, has_queued): (Uuid, String, bool) = crate::on!(
        conn,
        |db, dialect| {
            sqlx::query_as(dialect.sql(
            "UPDATE runs SET steps = steps + $2, updated_at = now(),
                 status = CASE WHEN EXISTS (SELECT 1 FROM tokens t WHERE t.run_id = $1 AND t.status <> 'ended')
                               THEN status WHEN error IS NULL THEN 'completed' ELSE 'failed' END,
                 ended_at = CASE WHEN EXISTS (SELECT 1 FROM tokens t WHERE t.run_id = $1 AND t.status <> 'ended')
                                 THEN ended_at ELSE now() END
             WHERE id = $1
             RETURNING account_id, status,
                 status <> 'active'
                     AND EXISTS (SELECT 1 FROM runs q WHERE q.account_id = runs.account_id AND q.status = 'queued')",
        ))
        .bind(id)
        .bind(i32::try_from(n).unwrap_or(i32::MAX))
        .fetch_one(&mut *db)
        .await
        }
    )?;
    Ok(ended(account_id, status, has_queued))
}

fn ended(account_id: Uuid, status: String, has_queued: bool) -> Option<Ended> {
    (status != "active").then_some(Ended {
        account_id,
        status,
        has_queued,
    })
}

/// Reserves `n` new token numbers and returns the first.
pub async fn allocate_tokens(conn: &mut Conn, id: Uuid, n: i32) -> Result<i32> {
    let (first,): (i32,) = crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql(
        "UPDATE runs SET next_token = next_token + $2 WHERE id = $1 RETURNING next_token - $2",
    ))
    .bind(id)
    .bind(n)
    .fetch_one(&mut *db)
    .await)?;
    Ok(first)
}

/// Ends an active or queued run; a run that already ended keeps its first ending. Returns the run's
/// account when it ended now (its slot may admit a queued run), `None` when it had ended already.
pub async fn finish(
    conn: &mut Conn,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<Option<Uuid>> {
    let ended: Option<(Uuid,)> = crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql(
        "UPDATE runs SET status = $2, error = $3, ended_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('active', 'queued') RETURNING account_id",
    ))
    .bind(id)
    .bind(status)
    .bind(error.map(crate::stored::text))
    .fetch_optional(&mut *db)
    .await)?;
    Ok(ended.map(|(account_id,)| account_id))
}

/// Filters for listing runs; every field is optional except the account.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub account_id: Uuid,
    pub phlo_id: Option<Uuid>,
    pub status: Option<String>,
    pub trigger_type: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Matches the caller or the called number.
    pub phone_number: Option<String>,
    /// Case-insensitive text searched in the trigger, the run's error and every step's variables.
    pub text: Option<String>,
    /// Cursor: runs strictly older than this (created_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(conn: &mut Conn, f: &Filter) -> Result<Vec<Run>> {
    let (before_at, before_id) = f.before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    let like = f.text.as_ref().map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql(dialect.pick(concat!("SELECT ", run_columns!(), " FROM runs
         WHERE account_id = $1
           AND ($2::uuid IS NULL OR phlo_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR trigger_type = $4)
           AND ($5::timestamptz IS NULL OR created_at >= $5)
           AND ($6::timestamptz IS NULL OR created_at < $6)
           AND ($7::text IS NULL OR from_number = $7 OR to_number = $7)
           AND ($8::text IS NULL OR trigger::text ILIKE $8 OR error ILIKE $8
                OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.id AND s.variables::text ILIKE $8))
           AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10))
         ORDER BY created_at DESC, id DESC LIMIT $11"),
        // SQLite's LIKE ignores ASCII case (not all of Unicode's, as ILIKE does) and has no default
        // escape character.
        concat!("SELECT ", run_columns!(), " FROM runs
         WHERE account_id = $1
           AND ($2 IS NULL OR phlo_id = $2)
           AND ($3 IS NULL OR status = $3)
           AND ($4 IS NULL OR trigger_type = $4)
           AND ($5 IS NULL OR created_at >= $5)
           AND ($6 IS NULL OR created_at < $6)
           AND ($7 IS NULL OR from_number = $7 OR to_number = $7)
           AND ($8 IS NULL OR trigger LIKE $8 ESCAPE '\\' OR error LIKE $8 ESCAPE '\\'
                OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.id
                                                   AND s.variables LIKE $8 ESCAPE '\\'))
           AND ($9 IS NULL OR (created_at, id) < ($9, $10))
         ORDER BY created_at DESC, id DESC LIMIT $11"),
    )))
    .bind(f.account_id)
    .bind(f.phlo_id)
    .bind(&f.status)
    .bind(&f.trigger_type)
    .bind(f.created_after)
    .bind(f.created_before)
    .bind(&f.phone_number)
    .bind(like)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(&mut *db)
    .await
    })?)
}

/// Active runs started before `cutoff`: candidates for the lifetime guard.
pub async fn active_before(
    conn: &mut Conn,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT id FROM runs WHERE status = 'active' AND created_at < $1 ORDER BY created_at LIMIT $2"))
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&mut *db)
            .await
    })?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Records why a token stopped; the run ends `failed` with it once its last token ends.
pub async fn set_error(conn: &mut Conn, id: Uuid, error: &str) -> Result<()> {
    crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
        "UPDATE runs SET error = coalesce(error, $2), updated_at = now() WHERE id = $1"
    ))
    .bind(id)
    .bind(crate::stored::text(error))
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A run by id alone, for carrier webhooks (which carry no account).
pub async fn find(conn: &mut Conn, id: Uuid) -> Result<Option<Run>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1"
        ))
    )
    .bind(id)
    .fetch_optional(&mut *db)
    .await)?)
}
