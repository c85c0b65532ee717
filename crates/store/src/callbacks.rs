//! Event-callback deliveries, their attempts, URLs disabled by a 410, and the accounts' webhook
//! signing secrets (stored sealed: [`crate::sealing`]).
//!
//! A delivery is written in the step's transaction ([`insert`]); the callback service claims one attempt
//! at a time ([`claim`], a short transaction, never held across the HTTP request), records its result
//! ([`finish`]), and a scheduler re-publishes deliveries whose message was lost or that were parked
//! until a long retry delay passed ([`take_due`]).

use crate::Conn;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::sealing::{Keyring, SEALED_PREFIX};

/// A delivery as the API and the callback service see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub run_id: Uuid,
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    pub node_id: Uuid,
    pub node_name: String,
    pub node_type: String,
    pub event: String,
    pub url: String,
    pub method: String,
    /// The body exactly as recorded (and sent).
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub round_start: i32,
    pub redeliveries: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub queued: bool,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The W3C trace context of the step that recorded it: every attempt continues that trace.
    pub traceparent: Option<String>,
}

macro_rules! delivery_columns {
    () => {
        "id, run_id, account_id, phlo_id, node_id, node_name, node_type, event, url, method, \
         payload::text AS payload, status, attempts, round_start, redeliveries, next_attempt_at, \
         lease_until, queued, last_status_code, last_error, created_at, updated_at, delivered_at, \
         traceparent"
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub status_code: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// A callback as a step emits it.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub id: Uuid,
    pub run_id: Uuid,
    pub node_id: Uuid,
    pub node_name: &'a str,
    pub node_type: &'a str,
    pub event: &'a str,
    pub url: &'a str,
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The JSON body, as text.
    pub payload: &'a str,
    /// The recording step's W3C trace context.
    pub traceparent: Option<&'a str>,
}

/// Records a delivery in the step's transaction. Its account and PHLO are the run's. Returns `None` when
/// the delivery is pending (to be published), or the reason it was recorded as `failed` without an
/// attempt: its URL answered 410 Gone to an earlier callback of the PHLO.
pub async fn insert(conn: &mut Conn, d: &NewDelivery<'_>) -> Result<Option<String>> {
    let (status, error): (String, Option<String>) = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql(dialect.pick("INSERT INTO callback_deliveries
             (id, run_id, account_id, phlo_id, node_id, node_name, node_type, event, url, method, payload,
              traceparent, status, next_attempt_at, last_error)
         SELECT $1, r.id, r.account_id, r.phlo_id, $3, $4, $5, $6, $7, $8, $9::json, $10,
                CASE WHEN x.url IS NULL THEN 'pending' ELSE 'failed' END,
                CASE WHEN x.url IS NULL THEN now() END,
                CASE WHEN x.url IS NOT NULL THEN
                    'not attempted: this URL answered 410 Gone to delivery ' || x.delivery_id || ' at '
                    || to_char(x.disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                    || ', so callbacks of this PHLO to it are disabled; redeliver a delivery to it '
                    || 'through the API to enable it again'
                END
         FROM runs r
         LEFT JOIN disabled_callback_urls x ON x.phlo_id = r.phlo_id AND x.url = $7
         WHERE r.id = $2
         RETURNING status, last_error",
        // The UUID as text, and the time without fractions, as Postgres prints them.
        "INSERT INTO callback_deliveries
             (id, run_id, account_id, phlo_id, node_id, node_name, node_type, event, url, method, payload,
              traceparent, status, next_attempt_at, last_error)
         SELECT $1, r.id, r.account_id, r.phlo_id, $3, $4, $5, $6, $7, $8, $9, $10,
                CASE WHEN x.url IS NULL THEN 'pending' ELSE 'failed' END,
                CASE WHEN x.url IS NULL THEN now() END,
                CASE WHEN x.url IS NOT NULL THEN
                    'not attempted: this URL answered 410 Gone to delivery '
                    || lower(substr(hex(x.delivery_id), 1, 8) || '-' || substr(hex(x.delivery_id), 9, 4)
                        || '-' || substr(hex(x.delivery_id), 13, 4) || '-'
                        || substr(hex(x.delivery_id), 17, 4) || '-' || substr(hex(x.delivery_id), 21))
                    || ' at ' || strftime('%Y-%m-%dT%H:%M:%SZ', x.disabled_at)
                    || ', so callbacks of this PHLO to it are disabled; redeliver a delivery to it '
                    || 'through the API to enable it again'
                END
         FROM runs r
         LEFT JOIN disabled_callback_urls x ON x.phlo_id = r.phlo_id AND x.url = $7
         WHERE r.id = $2
         RETURNING status, last_error",
    )))
    .bind(d.id)
    .bind(d.run_id)
    .bind(d.node_id)
    .bind(d.node_name)
    .bind(d.node_type)
    .bind(d.event)
    .bind(d.url)
    .bind(d.method)
    .bind(d.payload)
    .bind(d.traceparent)
    .fetch_one(&mut *db)
    .await
    })?;
    Ok(if status == "pending" { None } else { error })
}

/// The signing secrets of an account, opened (stored sealed, see [`crate::sealing`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    pub current: Option<String>,
    /// The secret before the last rotation, while it still signs.
    pub previous: Option<String>,
    pub previous_until: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Secrets")
            .field("current", &shown(&self.current))
            .field("previous", &shown(&self.previous))
            .field("previous_until", &self.previous_until)
            .field("rotated_at", &self.rotated_at)
            .finish()
    }
}

/// The columns as stored: sealed.
#[derive(sqlx::FromRow)]
struct StoredSecrets {
    id: Uuid,
    current: Option<String>,
    previous: Option<String>,
    previous_until: Option<DateTime<Utc>>,
    rotated_at: Option<DateTime<Utc>>,
}

impl StoredSecrets {
    fn open(self, keys: &Keyring) -> Result<Secrets> {
        let context = seal_context(self.id);
        let open = |v: Option<String>| v.map(|v| open_stored(keys, &v, &context)).transpose();
        Ok(Secrets {
            current: open(self.current)?,
            previous: open(self.previous)?,
            previous_until: self.previous_until,
            rotated_at: self.rotated_at,
        })
    }
}

/// What a sealed secret is bound to: its account (current and previous move between columns on a
/// rotation, so the column is not part of it).
fn seal_context(account_id: Uuid) -> String {
    format!("accounts.webhook_secret:{account_id}")
}

/// A stored secret, opened. A value from before migration 0007 is still plain text until a service
/// start seals it ([`seal_stored_secrets`]); it signs meanwhile.
fn open_stored(keys: &Keyring, stored: &str, context: &str) -> Result<String> {
    if stored.starts_with(SEALED_PREFIX) {
        Ok(keys.open(stored, context)?)
    } else {
        Ok(stored.to_owned())
    }
}

const SECRET_COLUMNS: &str = "id, webhook_secret AS current,
    CASE WHEN webhook_secret_previous_until > now() THEN webhook_secret_previous END AS previous,
    CASE WHEN webhook_secret_previous_until > now() THEN webhook_secret_previous_until END AS previous_until,
    webhook_secret_rotated_at AS rotated_at";

/// The account's secrets; `current` is `None` for an account that never had one.
pub async fn secrets(conn: &mut Conn, keys: &Keyring, account_id: Uuid) -> Result<Option<Secrets>> {
    let stored: Option<StoredSecrets> =
        crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql_owned(
            format!("SELECT {SECRET_COLUMNS} FROM accounts WHERE id = $1")
        ))
        .bind(account_id)
        .fetch_optional(&mut *db)
        .await)?;
    stored.map(|s| s.open(keys)).transpose()
}

/// Gives the account `fresh` as its secret unless it has one already (two callers racing keep the
/// first); returns the secrets now in force.
pub async fn ensure_secret(
    conn: &mut Conn,
    keys: &Keyring,
    account_id: Uuid,
    fresh: &str,
) -> Result<Option<Secrets>> {
    let stored: Option<StoredSecrets> = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql_owned(format!(
            "UPDATE accounts SET webhook_secret = COALESCE(webhook_secret, $2) WHERE id = $1
         RETURNING {SECRET_COLUMNS}"
        ))
    )
    .bind(account_id)
    .bind(keys.seal(fresh, &seal_context(account_id)))
    .fetch_optional(&mut *db)
    .await)?;
    stored.map(|s| s.open(keys)).transpose()
}

/// Replaces the secret with `fresh`; the old one keeps signing for `grace_secs`.
pub async fn rotate_secret(
    conn: &mut Conn,
    keys: &Keyring,
    account_id: Uuid,
    fresh: &str,
    grace_secs: f64,
) -> Result<Option<Secrets>> {
    // Postgres evaluates every SET expression against the old row, so `webhook_secret` on the right is
    // the secret being replaced.
    let stored: Option<StoredSecrets> = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql_owned(format!(
        "UPDATE accounts SET
             webhook_secret_previous = webhook_secret,
             webhook_secret_previous_until =
                 CASE WHEN webhook_secret IS NULL THEN NULL ELSE now() + make_interval(secs => $3) END,
             webhook_secret = $2,
             webhook_secret_rotated_at = now()
         WHERE id = $1
         RETURNING {SECRET_COLUMNS}"
    )))
    .bind(account_id)
    .bind(keys.seal(fresh, &seal_context(account_id)))
    .bind(grace_secs)
    .fetch_optional(&mut *db)
    .await
    })?;
    stored.map(|s| s.open(keys)).transpose()
}

/// Seals, under the current key, every stored secret that is not: plain text from before migration
/// 0007, or sealed under a previous key (a key rotation). Returns how many accounts changed. Every
/// service that reads secrets runs it at start-up; replicas running it at once share the rows (`SKIP
/// LOCKED`). A secret under a key the keyring lacks is an error: the service must not start with the
/// wrong key.
pub async fn seal_stored_secrets(pool: &crate::Pool, keys: &Keyring) -> Result<usize> {
    let current = format!("{SEALED_PREFIX}{}:%", keys.current_id());
    let mut sealed = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<(Uuid, Option<String>, Option<String>)> =
            crate::on!(&mut tx, |db, dialect| sqlx::query_as(dialect.sql(
                "SELECT id, webhook_secret, webhook_secret_previous FROM accounts
             WHERE webhook_secret NOT LIKE $1 OR webhook_secret_previous NOT LIKE $1
             ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
            ))
            .bind(&current)
            .fetch_all(&mut *db)
            .await)?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(sealed);
        }
        // Opened and sealed before any write, so that a row no key here opens ends the transaction
        // explicitly: a dropped one is rolled back only when its connection is next used, and until
        // then its row locks would make the next caller's SKIP LOCKED pass over these rows.
        let resealed: Result<Vec<_>> = rows
            .into_iter()
            .map(|(id, secret, previous)| {
                let context = seal_context(id);
                let reseal = |v: Option<String>| -> Result<Option<String>> {
                    v.map(|v| {
                        if keys.is_current(&v) {
                            Ok(v)
                        } else {
                            open_stored(keys, &v, &context).map(|plain| keys.seal(&plain, &context))
                        }
                    })
                    .transpose()
                };
                Ok((id, reseal(secret)?, reseal(previous)?))
            })
            .collect();
        let resealed = match resealed {
            Ok(resealed) => resealed,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        for (id, secret, previous) in resealed {
            crate::on!(&mut tx, |db, dialect| {
                sqlx::query(dialect.sql("UPDATE accounts SET webhook_secret = $2, webhook_secret_previous = $3 WHERE id = $1",))
            .bind(id)
            .bind(&secret)
            .bind(&previous)
            .execute(&mut *db)
            .await.map(|r| r.rows_affected())
            })?;
            sealed += 1;
        }
        tx.commit().await?;
    }
}

/// What [`claim`] found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Attempt `delivery.attempts` is ours until the lease lapses. Its log row is written when it ends
    /// ([`finish`]); until then the listings show it `in_progress`.
    Claimed(Box<Claimed>),
    /// No such delivery.
    Missing,
    /// Delivered, failed or dead: nothing to do.
    Finished,
    /// Another attempt is in flight for this long still.
    Leased(std::time::Duration),
    /// The next attempt is due in this long.
    NotDue(std::time::Duration),
    /// Its URL is disabled for the PHLO (a 410): the delivery is now `failed` with this reason.
    Disabled(String),
}

/// A claimed attempt and the account's signing secrets (opened) to sign it with; `secrets.current` is
/// `None` for an account that never had one.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub secrets: Secrets,
}

/// The error logged for an attempt whose process died before recording its result.
const INTERRUPTED: &str =
    "the callback service stopped during this attempt; whether it arrived is unknown";

/// Claims the next attempt of a pending delivery that is due (within `slack_secs`) and not in flight:
/// counts the attempt and leases it for `lease_secs`. An earlier attempt that never recorded its result
/// had its process die: it is logged `interrupted` (a late [`finish`] of it still overwrites that).
///
/// [`claim_many`] for one id, then [`explain_claim`] when it claimed nothing.
pub async fn claim(
    pool: &crate::Pool,
    keys: &Keyring,
    id: Uuid,
    lease_secs: f64,
    slack_secs: f64,
) -> Result<Claim> {
    let first = claim_many(pool, keys, &[id], lease_secs, slack_secs)
        .await?
        .into_iter()
        .next()
        .flatten();
    match first {
        Some(claimed) => claimed,
        None => explain_claim(pool, keys, id, lease_secs, slack_secs).await,
    }
}

/// The claims of many deliveries at once (see [`claim`]): one statement and one commit on Postgres,
/// which also reads the accounts' secrets. Per id, in order: `Some` with the claim (or the error
/// opening its secrets; the attempt is claimed all the same and its lease must lapse), or `None` when
/// the statement did not claim it; [`explain_claim`] then says why, one delivery at a time. An id
/// given twice is claimed at most once (the first). `Err` when the statement failed: nothing was
/// claimed.
///
/// SQLite has no data-modifying CTEs: every id is `None` there, without a statement.
pub async fn claim_many(
    pool: &crate::Pool,
    keys: &Keyring,
    ids: &[Uuid],
    lease_secs: f64,
    slack_secs: f64,
) -> Result<Vec<Option<Result<Claim>>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        delivery: Delivery,
        current: Option<String>,
        previous: Option<String>,
        previous_until: Option<DateTime<Utc>>,
        rotated_at: Option<DateTime<Utc>>,
    }
    let crate::Pool::Postgres(pg) = pool else {
        return Ok(ids.iter().map(|_| None).collect());
    };
    // Attempt n − 1 has a log row unless its process died (results are logged by `finish`, in the
    // statement that clears the lease, so a claim finding none is the next attempt after a crash). A
    // row still `in_progress` was written by a version that logged attempts as they started.
    // Rows are locked in index order (`= ANY` on the primary key sorts the array), so two replicas'
    // batches over the same ids wait for each other rather than deadlock.
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH claimed AS (
             UPDATE callback_deliveries d SET attempts = d.attempts + 1,
                 lease_until = now() + make_interval(secs => $2), updated_at = now()
             WHERE d.id = ANY($1) AND d.status = 'pending'
               AND (d.lease_until IS NULL OR d.lease_until <= now())
               AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= now() + make_interval(secs => $3))
               AND NOT EXISTS (SELECT 1 FROM disabled_callback_urls x
                               WHERE x.phlo_id = d.phlo_id AND x.url = d.url)
             RETURNING {delivery}
         ), interrupted AS (
             INSERT INTO callback_attempts (delivery_id, attempt, outcome, error)
             SELECT id, attempts - 1, 'interrupted', $4 FROM claimed WHERE attempts > 1
             ON CONFLICT (delivery_id, attempt) DO UPDATE
                 SET outcome = EXCLUDED.outcome, error = EXCLUDED.error
                 WHERE callback_attempts.outcome = 'in_progress'
         )
         SELECT c.*, a.webhook_secret AS current,
                CASE WHEN a.webhook_secret_previous_until > now() THEN a.webhook_secret_previous END
                    AS previous,
                CASE WHEN a.webhook_secret_previous_until > now() THEN a.webhook_secret_previous_until END
                    AS previous_until,
                a.webhook_secret_rotated_at AS rotated_at
         FROM claimed c LEFT JOIN accounts a ON a.id = c.account_id",
        delivery = delivery_columns!(),
    )))
    .bind(ids)
    .bind(lease_secs)
    .bind(slack_secs)
    .bind(INTERRUPTED)
    .fetch_all(pg)
    .await?;
    let mut claimed: std::collections::HashMap<Uuid, Row> =
        rows.into_iter().map(|r| (r.delivery.id, r)).collect();
    Ok(ids
        .iter()
        .map(|id| {
            let row = claimed.remove(id)?;
            let secrets = StoredSecrets {
                id: row.delivery.account_id,
                current: row.current,
                previous: row.previous,
                previous_until: row.previous_until,
                rotated_at: row.rotated_at,
            }
            .open(keys);
            Some(secrets.map(|secrets| {
                Claim::Claimed(Box::new(Claimed {
                    delivery: row.delivery,
                    secrets,
                }))
            }))
        })
        .collect())
}

/// Why [`claim_many`] did not claim `id` (its own transaction, locking the delivery): or the claim, if
/// the delivery became claimable meanwhile (and always on SQLite, where this is the whole claim).
pub async fn explain_claim(
    pool: &crate::Pool,
    keys: &Keyring,
    id: Uuid,
    lease_secs: f64,
    slack_secs: f64,
) -> Result<Claim> {
    let mut tx = pool.begin().await?;
    let found = claim_slowly(&mut tx, keys, id, lease_secs, slack_secs).await?;
    tx.commit().await?;
    Ok(found)
}
/// [`explain_claim`] in the caller's transaction.
async fn claim_slowly(
    conn: &mut Conn,
    keys: &Keyring,
    id: Uuid,
    lease_secs: f64,
    slack_secs: f64,
) -> Result<Claim> {
    #[derive(sqlx::FromRow)]
    struct Row {
        status: String,
        lease_left: Option<f64>,
        due_in: Option<f64>,
        disabled_by: Option<Uuid>,
    }
    let row: Option<Row> = crate::on!(&mut *conn, |db, dialect| sqlx::query_as(dialect.pick(
        "SELECT d.status,
                EXTRACT(EPOCH FROM d.lease_until - now())::float8 AS lease_left,
                EXTRACT(EPOCH FROM d.next_attempt_at - now())::float8 AS due_in,
                x.delivery_id AS disabled_by
         FROM callback_deliveries d
         LEFT JOIN disabled_callback_urls x ON x.phlo_id = d.phlo_id AND x.url = d.url
         WHERE d.id = $1
         FOR UPDATE OF d",
        "SELECT d.status,
                (julianday(d.lease_until) - julianday('now')) * 86400.0 AS lease_left,
                (julianday(d.next_attempt_at) - julianday('now')) * 86400.0 AS due_in,
                x.delivery_id AS disabled_by
         FROM callback_deliveries d
         LEFT JOIN disabled_callback_urls x ON x.phlo_id = d.phlo_id AND x.url = d.url
         WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *db)
    .await)?;
    let Some(row) = row else {
        return Ok(Claim::Missing);
    };
    let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
    if row.status != "pending" {
        return Ok(Claim::Finished);
    }
    if let Some(left) = row.lease_left.filter(|l| *l > 0.0) {
        return Ok(Claim::Leased(secs(left)));
    }
    if let Some(due_in) = row.due_in.filter(|d| *d > slack_secs) {
        return Ok(Claim::NotDue(secs(due_in)));
    }
    interrupt(conn, id).await?;
    if let Some(by) = row.disabled_by {
        let reason = format!(
            "not attempted: this URL answered 410 Gone to delivery {by}, so callbacks of this PHLO to it \
             are disabled; redeliver a delivery to it through the API to enable it again"
        );
        crate::on!(&mut *conn, |db, dialect| {
            sqlx::query(dialect.sql("UPDATE callback_deliveries SET status = 'failed', next_attempt_at = NULL, lease_until = NULL,
                 last_error = $2, updated_at = now()
             WHERE id = $1",))
        .bind(id)
        .bind(&reason)
        .execute(&mut *db)
        .await.map(|r| r.rows_affected())
        })?;
        return Ok(Claim::Disabled(reason));
    }
    let delivery: Delivery = crate::on!(&mut *conn, |db, dialect| sqlx::query_as(dialect.sql(
        concat!(
            "UPDATE callback_deliveries SET attempts = attempts + 1,
             lease_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE id = $1 RETURNING ",
            delivery_columns!()
        )
    ))
    .bind(id)
    .bind(lease_secs)
    .fetch_one(&mut *db)
    .await)?;
    let secrets = secrets(conn, keys, delivery.account_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(Claim::Claimed(Box::new(Claimed { delivery, secrets })))
}

/// Logs the delivery's last attempt `interrupted` if it never recorded a result (its lease lapsed).
async fn interrupt(conn: &mut Conn, id: Uuid) -> Result<()> {
    crate::on!(conn, |db, dialect| {
        sqlx::query(dialect.sql("INSERT INTO callback_attempts (delivery_id, attempt, outcome, error)
         SELECT id, attempts, 'interrupted', $2 FROM callback_deliveries WHERE id = $1 AND attempts > 0
         ON CONFLICT (delivery_id, attempt) DO UPDATE
             SET outcome = EXCLUDED.outcome, error = EXCLUDED.error
             WHERE callback_attempts.outcome = 'in_progress'",))
    .bind(id)
    .bind(INTERRUPTED)
    .execute(&mut *db)
    .await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The attempt's log outcome: delivered, retry, failed, dead or disabled.
    pub outcome: &'static str,
    /// The delivery's status afterwards: pending (retry), delivered, failed or dead.
    pub status: &'static str,
    pub status_code: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub response: Option<String>,
    /// For a retry: seconds until the next attempt, and whether a NATS message will bring it (a NAK with
    /// that delay) or the scheduler must publish it when due.
    pub retry_in_secs: f64,
    pub queued: bool,
}

/// Records attempt `attempt`'s result, and the delivery's new state unless a later attempt took over
/// (this one outlived its lease). A 410 also disables the URL for the PHLO. Returns whether the
/// delivery's state was updated. [`finish_many`] for one result.
pub async fn finish(conn: &mut Conn, id: Uuid, attempt: i32, f: &Finish) -> Result<bool> {
    let updated = finish_many(conn, &[(id, attempt, f)]).await?;
    Ok(updated.first().copied().unwrap_or(false))
}

/// [`finish`] for many attempts at once, all or none: per result, in order, whether its delivery's
/// state was updated. One statement on Postgres, so the log rows and the states go together without a
/// transaction around it, and many results share one commit; on SQLite three per result, in a
/// transaction (a savepoint in the caller's). The same attempt must not be given twice (Postgres
/// refuses to update one log row twice in a statement).
pub async fn finish_many(conn: &mut Conn, results: &[(Uuid, i32, &Finish)]) -> Result<Vec<bool>> {
    let db = match conn.raw() {
        crate::db::Raw::Postgres(db) => db,
        crate::db::Raw::Sqlite(db) => {
            let mut tx = crate::db::lite_tx(db).await?;
            let mut updated = Vec::with_capacity(results.len());
            for (id, attempt, f) in results {
                updated.push(finish_lite(&mut tx, *id, *attempt, f).await?);
            }
            tx.commit().await?;
            return Ok(updated);
        }
    };
    // Sorted, so that batches touching the same deliveries lock them in the same order.
    let mut sorted: Vec<&(Uuid, i32, &Finish)> = results.iter().collect();
    sorted.sort_by_key(|(id, attempt, _)| (*id, *attempt));
    let ids: Vec<Uuid> = sorted.iter().map(|r| r.0).collect();
    let attempts: Vec<i32> = sorted.iter().map(|r| r.1).collect();
    let outcomes: Vec<&str> = sorted.iter().map(|r| r.2.outcome).collect();
    let codes: Vec<Option<i32>> = sorted.iter().map(|r| r.2.status_code).collect();
    let latencies: Vec<Option<i32>> = sorted.iter().map(|r| r.2.latency_ms).collect();
    let errors: Vec<Option<&str>> = sorted.iter().map(|r| r.2.error.as_deref()).collect();
    let responses: Vec<Option<&str>> = sorted.iter().map(|r| r.2.response.as_deref()).collect();
    let statuses: Vec<&str> = sorted.iter().map(|r| r.2.status).collect();
    let retry_in: Vec<f64> = sorted.iter().map(|r| r.2.retry_in_secs).collect();
    let queued: Vec<bool> = sorted.iter().map(|r| r.2.queued).collect();
    // The row is written once the attempt ends; `at` is still when it started. It replaces an
    // `interrupted` row written meanwhile by a later claim (the result is known after all).
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "WITH r AS (
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::int[], $6::text[],
                                  $7::text[], $8::text[], $9::float8[], $10::bool[])
                 AS r(id, attempt, outcome, status_code, latency_ms, error, response, status,
                      retry_in_secs, queued)
         ), logged AS (
             INSERT INTO callback_attempts
                 (delivery_id, attempt, at, outcome, status_code, latency_ms, error, response)
             SELECT id, attempt, now() - make_interval(secs => COALESCE(latency_ms, 0) / 1000.0),
                    outcome, status_code, latency_ms, error, response
             FROM r
             ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = EXCLUDED.at,
                 outcome = EXCLUDED.outcome, status_code = EXCLUDED.status_code,
                 latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error, response = EXCLUDED.response
         ), updated AS (
             UPDATE callback_deliveries d SET
                 status = r.status,
                 next_attempt_at = CASE WHEN r.status = 'pending'
                                        THEN now() + make_interval(secs => r.retry_in_secs) END,
                 queued = r.queued,
                 lease_until = NULL,
                 last_status_code = r.status_code,
                 last_error = r.error,
                 delivered_at = CASE WHEN r.status = 'delivered' THEN now() ELSE d.delivered_at END,
                 updated_at = now()
             FROM r
             WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'pending'
             RETURNING d.id, r.attempt
         ), disabled AS (
             INSERT INTO disabled_callback_urls (phlo_id, url, delivery_id)
             SELECT d.phlo_id, d.url, d.id FROM callback_deliveries d JOIN r ON r.id = d.id
             WHERE r.outcome = 'disabled'
             ON CONFLICT (phlo_id, url) DO NOTHING
         )
         SELECT id, attempt FROM updated",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&outcomes)
    .bind(&codes)
    .bind(&latencies)
    .bind(&errors)
    .bind(&responses)
    .bind(&statuses)
    .bind(&retry_in)
    .bind(&queued)
    .fetch_all(&mut *db)
    .await?;
    let updated: std::collections::HashSet<(Uuid, i32)> = rows.into_iter().collect();
    Ok(results
        .iter()
        .map(|(id, attempt, _)| updated.contains(&(*id, *attempt)))
        .collect())
}

/// [`finish`] on SQLite (no data-modifying CTEs): its three statements in order, atomically.
async fn finish_lite(
    db: &mut sqlx::SqliteConnection,
    id: Uuid,
    attempt: i32,
    f: &Finish,
) -> Result<bool> {
    use crate::db::Backend::Sqlite;
    let mut tx = crate::db::lite_tx(db).await?;
    sqlx::query(Sqlite.sql(
        "INSERT INTO callback_attempts
             (delivery_id, attempt, at, outcome, status_code, latency_ms, error, response)
         VALUES ($1, $2, now() - make_interval(secs => COALESCE($5, 0) / 1000.0), $3, $4, $5, $6, $7)
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at,
             outcome = excluded.outcome, status_code = excluded.status_code,
             latency_ms = excluded.latency_ms, error = excluded.error, response = excluded.response",
    ))
    .bind(id)
    .bind(attempt)
    .bind(f.outcome)
    .bind(f.status_code)
    .bind(f.latency_ms)
    .bind(&f.error)
    .bind(&f.response)
    .execute(&mut *tx)
    .await?;
    let updated = sqlx::query(Sqlite.sql(
        "UPDATE callback_deliveries SET
             status = $3,
             next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $4) END,
             queued = $5,
             lease_until = NULL,
             last_status_code = $6,
             last_error = $7,
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
             updated_at = now()
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    ))
    .bind(id)
    .bind(attempt)
    .bind(f.status)
    .bind(f.retry_in_secs)
    .bind(f.queued)
    .bind(f.status_code)
    .bind(&f.error)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if f.outcome == "disabled" {
        sqlx::query(
            "INSERT INTO disabled_callback_urls (phlo_id, url, delivery_id)
             SELECT phlo_id, url, id FROM callback_deliveries WHERE id = $1
             ON CONFLICT (phlo_id, url) DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(updated == 1)
}

/// The attempts logged for `d`, and the one in flight: it has no row until it ends.
fn with_in_flight(d: &Delivery, mut attempts: Vec<Attempt>) -> Vec<Attempt> {
    let logged = attempts.last().map_or(0, |a| a.attempt);
    if d.lease_until.is_some() && d.attempts > logged {
        attempts.push(Attempt {
            delivery_id: d.id,
            attempt: d.attempts,
            at: d.updated_at,
            outcome: "in_progress".to_owned(),
            status_code: None,
            latency_ms: None,
            error: None,
            response: None,
        });
    }
    attempts
}

/// A delivery [`take_due`] claimed: its message is to be published.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub attempts: i32,
    /// Sent with the message, so the attempt continues the run's trace.
    pub traceparent: Option<String>,
}

/// Claims pending deliveries that need a message: parked ones whose next attempt is due, and queued ones
/// overdue by more than `overdue_secs` (their message was lost, or their attempt's process died and its
/// lease lapsed). Marks them queued and due now, so a lost re-publish is noticed again after another
/// `overdue_secs`. The caller publishes inside the same transaction (`SKIP LOCKED` keeps replicas apart).
pub async fn take_due(conn: &mut Conn, overdue_secs: f64, limit: i64) -> Result<Vec<Due>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(dialect.pick(
            "WITH due AS (
             SELECT id FROM callback_deliveries
             WHERE status = 'pending'
               AND (lease_until IS NULL OR lease_until < now())
               AND next_attempt_at <= now()
                   - CASE WHEN queued THEN make_interval(secs => $1) ELSE interval '0' END
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE callback_deliveries d SET queued = true, next_attempt_at = now(), updated_at = now()
         FROM due WHERE d.id = due.id
         RETURNING d.id, d.attempts, d.traceparent",
            // One writer: no rows to skip, and no `UPDATE … FROM` a CTE needed.
            "UPDATE callback_deliveries SET queued = 1, next_attempt_at = now(), updated_at = now()
             WHERE id IN (
                 SELECT id FROM callback_deliveries
                 WHERE status = 'pending'
                   AND (lease_until IS NULL OR lease_until < now())
                   AND next_attempt_at <= CASE WHEN queued THEN now() - make_interval(secs => $1)
                                               ELSE now() END
                 ORDER BY next_attempt_at
                 LIMIT $2
             )
             RETURNING id, attempts, traceparent",
        ))
    )
    .bind(overdue_secs)
    .bind(limit)
    .fetch_all(&mut *db)
    .await)?)
}

/// What [`redeliver`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeliver {
    /// Pending again, due now; the n-th redelivery. Its URL is enabled again for the PHLO.
    Queued {
        redeliveries: i32,
    },
    Missing,
    /// Only dead and failed deliveries can be redelivered; this is its status.
    NotRedeliverable(String),
}

/// Puts a dead or failed delivery of this account back to pending with a fresh retry schedule (same
/// id, so the same `webhook-id`), and enables its URL again if a 410 had disabled it.
pub async fn redeliver(conn: &mut Conn, account_id: Uuid, id: Uuid) -> Result<Redeliver> {
    let row: Option<(i32,)> = crate::on!(&mut *conn, |db, dialect| {
        sqlx::query_as(dialect.sql("UPDATE callback_deliveries SET status = 'pending', next_attempt_at = now(), queued = true,
             lease_until = NULL, round_start = attempts, redeliveries = redeliveries + 1, updated_at = now()
         WHERE id = $1 AND account_id = $2 AND status IN ('dead', 'failed')
         RETURNING redeliveries",))
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await
    })?;
    if let Some((redeliveries,)) = row {
        crate::on!(conn, |db, dialect| sqlx::query(dialect.pick(
            "DELETE FROM disabled_callback_urls x USING callback_deliveries d
             WHERE d.id = $1 AND x.phlo_id = d.phlo_id AND x.url = d.url",
            "DELETE FROM disabled_callback_urls
             WHERE (phlo_id, url) IN (SELECT phlo_id, url FROM callback_deliveries WHERE id = $1)",
        ))
        .bind(id)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()))?;
        return Ok(Redeliver::Queued { redeliveries });
    }
    let status: Option<(String,)> = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql("SELECT status FROM callback_deliveries WHERE id = $1 AND account_id = $2")
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?;
    Ok(match status {
        Some((status,)) => Redeliver::NotRedeliverable(status),
        None => Redeliver::Missing,
    })
}

/// A delivery of this account.
pub async fn get(conn: &mut Conn, account_id: Uuid, id: Uuid) -> Result<Option<Delivery>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM callback_deliveries WHERE id = $1 AND account_id = $2"
        ))
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?)
}

/// The logged attempts of these deliveries, by delivery, in attempt order.
async fn attempts_of(
    conn: &mut Conn,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Attempt>>> {
    const COLUMNS: &str =
        "delivery_id, attempt, at, outcome, status_code, latency_ms, error, response";
    let attempts: Vec<Attempt> = match conn.raw() {
        crate::db::Raw::Postgres(db) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM callback_attempts WHERE delivery_id = ANY($1)
                 ORDER BY delivery_id, attempt"
            )))
            .bind(ids)
            .fetch_all(&mut *db)
            .await?
        }
        crate::db::Raw::Sqlite(db) => {
            // No arrays in SQLite; a page holds a bounded number of deliveries.
            let mut all = Vec::new();
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM callback_attempts WHERE delivery_id IN ({marks})
                     ORDER BY delivery_id, attempt"
                )));
                for id in chunk {
                    query = query.bind(id);
                }
                all.extend(query.fetch_all(&mut *db).await?);
            }
            all
        }
    };
    let mut by_delivery: std::collections::HashMap<Uuid, Vec<Attempt>> = Default::default();
    for a in attempts {
        by_delivery.entry(a.delivery_id).or_default().push(a);
    }
    Ok(by_delivery)
}

/// A run's deliveries, oldest first, each with its attempts.
pub async fn list_for_run(
    conn: &mut Conn,
    account_id: Uuid,
    run_id: Uuid,
) -> Result<Vec<(Delivery, Vec<Attempt>)>> {
    let deliveries: Vec<Delivery> = crate::on!(&mut *conn, |db, dialect| {
        sqlx::query_as(dialect.sql(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM callback_deliveries WHERE run_id = $1 AND account_id = $2 ORDER BY created_at, id"
    )))
    .bind(run_id)
    .bind(account_id)
    .fetch_all(&mut *db)
    .await
    })?;
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let mut by_delivery = attempts_of(conn, &ids).await?;
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let attempts = with_in_flight(&d, by_delivery.remove(&d.id).unwrap_or_default());
            (d, attempts)
        })
        .collect())
}

/// A place in the order deliveries last changed in: the transaction that last wrote the delivery, then
/// its id (migration 0009 explains why a transaction id and not a time or a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangePosition {
    pub xid: u64,
    pub id: Uuid,
}

/// Which page of [`list_for_account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangePage {
    /// The most recently changed first, below `before` when given (the previous page's last).
    Newest { before: Option<ChangePosition> },
    /// The changes after this position, in the order they committed: for tailing.
    After(ChangePosition),
}

/// What [`list_for_account`] selects.
#[derive(Debug, Clone)]
pub struct AccountFilter {
    pub account_id: Uuid,
    pub phlo_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub status: Option<String>,
    /// Deliveries that changed at or after this time.
    pub changed_since: Option<DateTime<Utc>>,
    pub page: ChangePage,
    pub limit: i64,
}

/// A delivery as [`list_for_account`] lists it.
#[derive(Debug, Clone)]
pub struct ListedDelivery {
    pub delivery: Delivery,
    pub attempts: Vec<Attempt>,
    pub position: ChangePosition,
}

#[derive(Debug, Clone)]
pub struct AccountListing {
    pub deliveries: Vec<ListedDelivery>,
    /// Every change before this position was considered: a tail may resume from it. No transaction
    /// still running can commit a change before it.
    pub horizon: ChangePosition,
}

/// The account's deliveries across runs, each with its attempts, in the order they last changed (a new
/// attempt, a result, a redelivery). Only changes below the horizon of finished transactions are listed,
/// so a tail that resumes after the last position it saw never misses one committed late.
pub async fn list_for_account(conn: &mut Conn, f: &AccountFilter) -> Result<AccountListing> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        delivery: Delivery,
        // Not `change_xid`: ORDER BY would take an output column of that name, sorting the text.
        change_xid_text: String,
    }
    // Taken before the listing's own snapshot: everything below it is committed and visible there.
    let (horizon,): (String,) =
        crate::on!(&mut *conn, |db, dialect| sqlx::query_as(dialect.pick(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
            // One writer, and nothing uncommitted visible: every change so far is below the next.
            "SELECT CAST(value + 1 AS TEXT) FROM callback_change_counter",
        ))
        .fetch_one(&mut *db)
        .await)?;
    let horizon = ChangePosition {
        xid: parse_xid(&horizon)?,
        id: Uuid::nil(),
    };
    let (newest, from) = match f.page {
        ChangePage::Newest { before } => (true, before),
        ChangePage::After(after) => (false, Some(after)),
    };
    // Two statements rather than one with a direction parameter: each keeps a plain index scan of
    // `callback_deliveries_by_change` in its order.
    let sql = match (newest, conn.backend()) {
        (true, crate::Backend::Postgres) => concat!(
            "SELECT ",
            delivery_columns!(),
            ", change_xid::text AS change_xid_text FROM callback_deliveries
             WHERE account_id = $1
               AND change_xid < $2::text::xid8
               AND ($3::text IS NULL OR (change_xid, id) < ($3::text::xid8, $4))
               AND ($5::uuid IS NULL OR phlo_id = $5)
               AND ($6::uuid IS NULL OR run_id = $6)
               AND ($7::text IS NULL OR status = $7)
               AND ($8::timestamptz IS NULL OR updated_at >= $8)
             ORDER BY change_xid DESC, id DESC LIMIT $9"
        ),
        (false, crate::Backend::Postgres) => concat!(
            "SELECT ",
            delivery_columns!(),
            ", change_xid::text AS change_xid_text FROM callback_deliveries
             WHERE account_id = $1
               AND change_xid < $2::text::xid8
               AND ($3::text IS NULL OR (change_xid, id) > ($3::text::xid8, $4))
               AND ($5::uuid IS NULL OR phlo_id = $5)
               AND ($6::uuid IS NULL OR run_id = $6)
               AND ($7::text IS NULL OR status = $7)
               AND ($8::timestamptz IS NULL OR updated_at >= $8)
             ORDER BY change_xid, id LIMIT $9"
        ),
        // The stamp is an integer in SQLite; positions are bound as text as for Postgres.
        (true, crate::Backend::Sqlite) => concat!(
            "SELECT ",
            delivery_columns!(),
            ", CAST(change_xid AS TEXT) AS change_xid_text FROM callback_deliveries
             WHERE account_id = $1
               AND change_xid < CAST($2 AS INTEGER)
               AND ($3 IS NULL OR (change_xid, id) < (CAST($3 AS INTEGER), $4))
               AND ($5 IS NULL OR phlo_id = $5)
               AND ($6 IS NULL OR run_id = $6)
               AND ($7 IS NULL OR status = $7)
               AND ($8 IS NULL OR updated_at >= $8)
             ORDER BY change_xid DESC, id DESC LIMIT $9"
        ),
        (false, crate::Backend::Sqlite) => concat!(
            "SELECT ",
            delivery_columns!(),
            ", CAST(change_xid AS TEXT) AS change_xid_text FROM callback_deliveries
             WHERE account_id = $1
               AND change_xid < CAST($2 AS INTEGER)
               AND ($3 IS NULL OR (change_xid, id) > (CAST($3 AS INTEGER), $4))
               AND ($5 IS NULL OR phlo_id = $5)
               AND ($6 IS NULL OR run_id = $6)
               AND ($7 IS NULL OR status = $7)
               AND ($8 IS NULL OR updated_at >= $8)
             ORDER BY change_xid, id LIMIT $9"
        ),
    };
    let rows: Vec<Row> = crate::on!(&mut *conn, |db, dialect| sqlx::query_as(dialect.sql(sql))
        .bind(f.account_id)
        .bind(horizon.xid.to_string())
        .bind(from.map(|p| p.xid.to_string()))
        .bind(from.map(|p| p.id))
        .bind(f.phlo_id)
        .bind(f.run_id)
        .bind(&f.status)
        .bind(f.changed_since)
        .bind(f.limit)
        .fetch_all(&mut *db)
        .await)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.delivery.id).collect();
    let mut by_delivery = attempts_of(conn, &ids).await?;
    let deliveries = rows
        .into_iter()
        .map(|r| {
            Ok(ListedDelivery {
                position: ChangePosition {
                    xid: parse_xid(&r.change_xid_text)?,
                    id: r.delivery.id,
                },
                attempts: with_in_flight(
                    &r.delivery,
                    by_delivery.remove(&r.delivery.id).unwrap_or_default(),
                ),
                delivery: r.delivery,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AccountListing {
        deliveries,
        horizon,
    })
}

/// An `xid8` as Postgres prints it (a 64-bit unsigned integer).
fn parse_xid(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| sqlx::Error::Decode(format!("not a transaction id: {text:?}").into()).into())
}

/// Deliveries by status, for gauges and tests.
pub async fn count_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql(
            "SELECT status, count(*) FROM callback_deliveries GROUP BY status ORDER BY status",
        )
    )
    .fetch_all(&mut *db)
    .await)?)
}

/// The payload as a JSON value (for the API), `null` if it does not parse.
pub fn payload_value(d: &Delivery) -> Value {
    serde_json::from_str(&d.payload).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A connection for one statement: SQLite pools hold one, and [`claim`] takes its own.
    async fn c(pool: &crate::Pool) -> Conn {
        pool.acquire().await.unwrap()
    }

    /// An account, a PHLO and a run, inserted directly.
    async fn fixture(conn: &mut Conn) -> (Uuid, Uuid, Uuid) {
        let (account, phlo) = crate::testing::account_and_phlo(conn).await.unwrap();
        let run = Uuid::now_v7();
        crate::on!(conn, |db, dialect| sqlx::query(dialect.sql(
            "INSERT INTO runs (id, account_id, phlo_id, revision, status, trigger_type, trigger)
             VALUES ($1, $2, $3, 1, 'active', 'api', '{}')",
        ))
        .bind(run)
        .bind(account)
        .bind(phlo)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        (account, phlo, run)
    }

    async fn new(conn: &mut Conn, run: Uuid, url: &str) -> (Uuid, Option<String>) {
        let id = Uuid::now_v7();
        let skipped = insert(
            conn,
            &NewDelivery {
                id,
                run_id: run,
                node_id: Uuid::nil(),
                node_name: "Start",
                node_type: "start",
                event: "api_request",
                url,
                method: "POST",
                payload: r#"{"type":"phlo.node.api_request","b":1,"a":2}"#,
                traceparent: Some(TRACEPARENT),
            },
        )
        .await
        .unwrap();
        (id, skipped)
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// What [`take_due`] returns for the delivery `id` after `attempts` attempts.
    fn due(id: Uuid, attempts: i32) -> Due {
        Due {
            id,
            attempts,
            traceparent: Some(TRACEPARENT.to_owned()),
        }
    }

    fn retry(in_secs: f64, queued: bool) -> Finish {
        Finish {
            outcome: "retry",
            status: "pending",
            status_code: Some(503),
            latency_ms: Some(3),
            error: Some("HTTP 503".into()),
            response: None,
            retry_in_secs: in_secs,
            queued,
        }
    }

    fn test_keys() -> Keyring {
        Keyring::new(&[7; 32])
    }

    async fn claimed(pool: &crate::Pool, id: Uuid) -> Delivery {
        match claim(pool, &test_keys(), id, 30.0, 1.0).await.unwrap() {
            Claim::Claimed(c) => c.delivery,
            other => panic!("not claimed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_delivery_through_its_states() {
        crate::testing::on_both(|pool| async move {
        let (account, phlo, run) = fixture(&mut c(&pool).await).await;
        let (id, skipped) = new(&mut c(&pool).await, run, "https://example.com/a").await;
        assert_eq!(skipped, None);

        // The body is kept byte for byte (json, not jsonb).
        let d = claimed(&pool, id).await;
        assert_eq!(d.payload, r#"{"type":"phlo.node.api_request","b":1,"a":2}"#);
        assert_eq!((d.attempts, d.account_id, d.phlo_id), (1, account, phlo));
        assert_eq!(d.traceparent.as_deref(), Some(TRACEPARENT));
        assert!(matches!(
            claim(&pool, &test_keys(), id, 30.0, 1.0).await.unwrap(),
            Claim::Leased(_)
        ));

        // A long retry parks it in Postgres: not due, and the scheduler leaves it until it is.
        assert!(
            finish(&mut c(&pool).await, id, 1, &retry(100.0, false))
                .await
                .unwrap()
        );
        match claim(&pool, &test_keys(), id, 30.0, 1.0).await.unwrap() {
            Claim::NotDue(left) => assert!(left.as_secs() > 90, "{left:?}"),
            other => panic!("{other:?}"),
        }
        assert!(take_due(&mut c(&pool).await, 60.0, 10).await.unwrap().is_empty());
        // Parked and due: published at once.
        crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.sql("UPDATE callback_deliveries SET next_attempt_at = now() WHERE id = $1"))
            .bind(id)
            .execute(&mut *db)
            .await.map(|r| r.rows_affected()))
            .unwrap();
        assert_eq!(take_due(&mut c(&pool).await, 60.0, 10).await.unwrap(), [due(id, 1)]);
        // Now queued: only overdue ones are published again.
        assert!(take_due(&mut c(&pool).await, 60.0, 10).await.unwrap().is_empty());
        assert_eq!(take_due(&mut c(&pool).await, 0.0, 10).await.unwrap(), [due(id, 1)]);

        // An attempt whose process died: its lease lapses, the next claim logs it interrupted.
        let d = claimed(&pool, id).await;
        assert_eq!(d.attempts, 2);
        crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.sql("UPDATE callback_deliveries SET lease_until = now() - make_interval(secs => 1) WHERE id = $1",))
        .bind(id)
        .execute(&mut *db)
        .await.map(|r| r.rows_affected()))
        .unwrap();
        assert_eq!(take_due(&mut c(&pool).await, 0.0, 10).await.unwrap(), [due(id, 2)]);
        let d = claimed(&pool, id).await;
        assert_eq!(d.attempts, 3);
        let outcomes = |log: Vec<(Delivery, Vec<Attempt>)>| -> Vec<(i32, String)> {
            log[0]
                .1
                .iter()
                .map(|a| (a.attempt, a.outcome.clone()))
                .collect()
        };
        let log = list_for_run(&mut c(&pool).await, account, run).await.unwrap();
        assert_eq!(
            outcomes(log),
            [
                (1, "retry".to_owned()),
                (2, "interrupted".to_owned()),
                (3, "in_progress".to_owned())
            ],
            "results are logged when attempts end; the one in flight is listed in progress"
        );
        // The late finish of attempt 2 is logged but changes nothing.
        assert!(!finish(&mut c(&pool).await, id, 2, &retry(1.0, true)).await.unwrap());

        // 410: failed, and the URL is disabled for the PHLO.
        let gone = Finish {
            outcome: "disabled",
            status: "failed",
            status_code: Some(410),
            ..retry(0.0, false)
        };
        assert!(finish(&mut c(&pool).await, id, 3, &gone).await.unwrap());
        let log = list_for_run(&mut c(&pool).await, account, run).await.unwrap();
        let outcomes: Vec<&str> = log[0].1.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["retry", "retry", "disabled"]);
        assert_eq!(log[0].0.status, "failed");
        let (later, skipped) = new(&mut c(&pool).await, run, "https://example.com/a").await;
        let reason = skipped.expect("not attempted");
        assert!(
            reason.starts_with(&format!(
                "not attempted: this URL answered 410 Gone to delivery {id} at "
            )),
            "{reason}"
        );
        assert!(matches!(
            claim(&pool, &test_keys(), later, 30.0, 1.0)
                .await
                .unwrap(),
            Claim::Finished
        ));
        assert_eq!(
            new(&mut c(&pool).await, run, "https://example.com/other").await.1,
            None
        );

        // Redelivery: only dead or failed ones, only the owner's; it enables the URL again.
        let (stranger, _, _) = fixture(&mut c(&pool).await).await;
        assert_eq!(
            redeliver(&mut c(&pool).await, stranger, id).await.unwrap(),
            Redeliver::Missing
        );
        assert_eq!(
            redeliver(&mut c(&pool).await, account, id).await.unwrap(),
            Redeliver::Queued { redeliveries: 1 }
        );
        assert_eq!(
            redeliver(&mut c(&pool).await, account, id).await.unwrap(),
            Redeliver::NotRedeliverable("pending".into())
        );
        let d = claimed(&pool, id).await;
        assert_eq!((d.attempts, d.round_start), (4, 3));
        assert_eq!(new(&mut c(&pool).await, run, "https://example.com/a").await.1, None);
        }).await;
    }

    #[tokio::test]
    async fn a_batch_claims_what_it_can_and_each_of_the_rest_is_explained() {
        crate::testing::on_both(|pool| async move {
            let keys = test_keys();
            let (_, _, run) = fixture(&mut c(&pool).await).await;
            let (claimable, _) = new(&mut c(&pool).await, run, "https://example.com/a").await;
            let (leased, _) = new(&mut c(&pool).await, run, "https://example.com/b").await;
            let (done, _) = new(&mut c(&pool).await, run, "https://example.com/c").await;
            let (later, _) = new(&mut c(&pool).await, run, "https://example.com/d").await;
            for id in [leased, done, later] {
                claimed(&pool, id).await;
            }
            let delivered = Finish {
                outcome: "delivered",
                status: "delivered",
                status_code: Some(200),
                error: None,
                ..retry(0.0, false)
            };
            let results = [(done, 1, &delivered), (later, 1, &retry(100.0, false))];
            assert_eq!(
                finish_many(&mut c(&pool).await, &results).await.unwrap(),
                [true, true]
            );
            let missing = Uuid::now_v7();
            // `claimable` twice: a duplicate message in the same batch.
            let ids = [claimable, leased, missing, claimable, done, later];
            let batch = claim_many(&pool, &keys, &ids, 30.0, 1.0).await.unwrap();
            assert_eq!(batch.len(), ids.len());
            let explain = |id| explain_claim(&pool, &keys, id, 30.0, 1.0);
            if pool.backend() == crate::Backend::Postgres {
                match &batch[0] {
                    Some(Ok(Claim::Claimed(c))) => assert_eq!(c.delivery.attempts, 1),
                    other => panic!("{other:?}"),
                }
                assert!(batch[1..].iter().all(Option::is_none), "{batch:?}");
            } else {
                // No batch statement: each delivery on its own.
                assert!(batch.iter().all(Option::is_none), "{batch:?}");
                assert!(matches!(
                    explain(claimable).await.unwrap(),
                    Claim::Claimed(_)
                ));
            }
            assert!(matches!(
                explain(claimable).await.unwrap(),
                Claim::Leased(_)
            ));
            assert!(matches!(explain(leased).await.unwrap(), Claim::Leased(_)));
            assert!(matches!(explain(missing).await.unwrap(), Claim::Missing));
            assert!(matches!(explain(done).await.unwrap(), Claim::Finished));
            match explain(later).await.unwrap() {
                Claim::NotDue(left) => assert!(left.as_secs() > 90, "{left:?}"),
                other => panic!("{other:?}"),
            }
            let attempts = |id| {
                let pool = pool.clone();
                async move {
                    let mut conn = c(&pool).await;
                    let (n,): (i32,) = crate::on!(&mut conn, |db, dialect| sqlx::query_as(
                        dialect.sql("SELECT attempts FROM callback_deliveries WHERE id = $1")
                    )
                    .bind(id)
                    .fetch_one(&mut *db)
                    .await)
                    .unwrap();
                    n
                }
            };
            for id in [claimable, leased, done, later] {
                assert_eq!(attempts(id).await, 1, "one attempt counted");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_claim_brings_the_secrets_and_logs_an_older_versions_in_progress_row_interrupted() {
        crate::testing::on_both(|pool| async move {
        let keys = test_keys();
        let (account, _, run) = fixture(&mut c(&pool).await).await;
        ensure_secret(&mut c(&pool).await, &keys, account, "whsec_a")
            .await
            .unwrap();
        rotate_secret(&mut c(&pool).await, &keys, account, "whsec_b", 60.0)
            .await
            .unwrap();
        let (id, _) = new(&mut c(&pool).await, run, "https://example.com/a").await;
        let Claim::Claimed(first) = claim(&pool, &keys, id, 30.0, 1.0).await.unwrap() else {
            panic!("not claimed");
        };
        assert_eq!(first.secrets.current.as_deref(), Some("whsec_b"));
        assert_eq!(first.secrets.previous.as_deref(), Some("whsec_a"));
        // Versions before results were logged at the end wrote the row as the attempt started.
        for sql in [
            "INSERT INTO callback_attempts (delivery_id, attempt, outcome) VALUES ($1, 1, 'in_progress')",
            "UPDATE callback_deliveries SET lease_until = now() - make_interval(secs => 1) WHERE id = $1",
        ] {
            crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.sql(sql)).bind(id).execute(&mut *db).await.map(|r| r.rows_affected())).unwrap();
        }
        claimed(&pool, id).await;
        let log = list_for_run(&mut c(&pool).await, account, run).await.unwrap();
        let outcomes: Vec<&str> = log[0].1.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["interrupted", "in_progress"]);
        }).await;
    }

    #[tokio::test]
    async fn secrets_are_created_once_and_rotated_with_a_grace_period() {
        crate::testing::on_both(|pool| async move {
            let keys = Keyring::new(&[9; 32]);
            let (account, _, _) = fixture(&mut c(&pool).await).await;
            assert_eq!(
                secrets(&mut c(&pool).await, &keys, account)
                    .await
                    .unwrap()
                    .unwrap()
                    .current,
                None
            );
            let first = ensure_secret(&mut c(&pool).await, &keys, account, "whsec_a")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(first.current.as_deref(), Some("whsec_a"));
            let again = ensure_secret(&mut c(&pool).await, &keys, account, "whsec_b")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                again.current.as_deref(),
                Some("whsec_a"),
                "the first one stays"
            );
            let rotated = rotate_secret(&mut c(&pool).await, &keys, account, "whsec_c", 60.0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rotated.current.as_deref(), Some("whsec_c"));
            assert_eq!(rotated.previous.as_deref(), Some("whsec_a"));
            assert!(rotated.previous_until.is_some() && rotated.rotated_at.is_some());
            assert!(!format!("{rotated:?}").contains("whsec_"));
            // Past the grace period the previous secret no longer signs.
            let expired = rotate_secret(&mut c(&pool).await, &keys, account, "whsec_d", 0.0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(expired.previous, None);
            assert_eq!(
                secrets(&mut c(&pool).await, &keys, Uuid::now_v7())
                    .await
                    .unwrap(),
                None
            );
        })
        .await;
    }

    async fn stored(conn: &mut Conn, account: Uuid) -> (Option<String>, Option<String>) {
        crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql(
            "SELECT webhook_secret, webhook_secret_previous FROM accounts WHERE id = $1"
        ))
        .bind(account)
        .fetch_one(&mut *db)
        .await)
        .unwrap()
    }

    #[tokio::test]
    async fn secrets_are_stored_sealed_bound_to_their_account_and_plain_text_is_refused() {
        crate::testing::on_both(|pool| async move {
            let keys = Keyring::new(&[3; 32]);
            let (a, _, _) = fixture(&mut c(&pool).await).await;
            let (b, _, _) = fixture(&mut c(&pool).await).await;
            ensure_secret(&mut c(&pool).await, &keys, a, "whsec_first")
                .await
                .unwrap();
            rotate_secret(&mut c(&pool).await, &keys, a, "whsec_second", 60.0)
                .await
                .unwrap();
            let (current, previous) = stored(&mut c(&pool).await, a).await;
            for value in [current.as_deref().unwrap(), previous.as_deref().unwrap()] {
                assert!(
                    value.starts_with(&format!("sealed:v1:{}:", keys.current_id())),
                    "{value}"
                );
                assert!(!value.contains("whsec_"), "{value}");
            }
            // Another key cannot open them; nor can another account use them (a copied row).
            let other = Keyring::new(&[4; 32]);
            assert!(matches!(
                secrets(&mut c(&pool).await, &other, a).await,
                Err(crate::StoreError::Sealing(
                    crate::sealing::SealError::UnknownKey(_)
                ))
            ));
            crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(
                dialect.sql("UPDATE accounts SET webhook_secret = $2 WHERE id = $1")
            )
            .bind(b)
            .bind(&current)
            .execute(&mut *db)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            assert!(matches!(
                secrets(&mut c(&pool).await, &keys, b).await,
                Err(crate::StoreError::Sealing(
                    crate::sealing::SealError::Corrupt
                ))
            ));
            // Migration 0007: no row may be written with a plain-text secret any more.
            let plain = crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(
                dialect.sql("UPDATE accounts SET webhook_secret = 'whsec_plain' WHERE id = $1")
            )
            .bind(a)
            .execute(&mut *db)
            .await
            .map(|r| r.rows_affected()))
            .unwrap_err();
            assert!(
                plain.to_string().contains("accounts_webhook_secret_sealed"),
                "{plain}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn start_up_seals_plain_text_and_reseals_under_a_rotated_key() {
        crate::testing::on_both(|pool| async move {
        let (legacy, _, _) = fixture(&mut c(&pool).await).await;
        let (rotated, _, _) = fixture(&mut c(&pool).await).await;
        let (none, _, _) = fixture(&mut c(&pool).await).await;
        // Rows as written before migration 0007: plain text (the constraints only check new writes,
        // so they are lifted to write these).
        crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.pick(
            "ALTER TABLE accounts DROP CONSTRAINT accounts_webhook_secret_sealed,
                 DROP CONSTRAINT accounts_webhook_secret_previous_sealed",
            // SQLite cannot drop a constraint; the pool's one connection stops checking them.
            "PRAGMA ignore_check_constraints = ON",
        ))
        .execute(&mut *db)
        .await.map(|r| r.rows_affected()))
        .unwrap();
        crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.sql("UPDATE accounts SET webhook_secret = 'whsec_new', webhook_secret_previous = 'whsec_old',
                 webhook_secret_previous_until = now() + make_interval(secs => 3600) WHERE id = $1",))
        .bind(legacy)
        .execute(&mut *db)
        .await.map(|r| r.rows_affected()))
        .unwrap();
        let old_key = Keyring::new(&[1; 32]);
        ensure_secret(&mut c(&pool).await, &old_key, rotated, "whsec_r")
            .await
            .unwrap();

        // Plain text still signs until a service seals it.
        let keys = Keyring::new(&[2; 32]).with_previous(&[1; 32]);
        let before = secrets(&mut c(&pool).await, &keys, legacy).await.unwrap().unwrap();
        assert_eq!(before.current.as_deref(), Some("whsec_new"));
        assert_eq!(before.previous.as_deref(), Some("whsec_old"));

        // Without the key that sealed a row, the service must not start.
        let wrong = Keyring::new(&[2; 32]);
        assert!(matches!(
            seal_stored_secrets(&pool, &wrong).await,
            Err(crate::StoreError::Sealing(
                crate::sealing::SealError::UnknownKey(_)
            ))
        ));

        assert_eq!(seal_stored_secrets(&pool, &keys).await.unwrap(), 2);
        assert_eq!(
            seal_stored_secrets(&pool, &keys).await.unwrap(),
            0,
            "idempotent"
        );
        for account in [legacy, rotated] {
            let (current, previous) = stored(&mut c(&pool).await, account).await;
            for value in current.iter().chain(&previous) {
                assert!(keys.is_current(value), "{value}");
            }
        }
        assert_eq!(stored(&mut c(&pool).await, none).await, (None, None));
        // The same secrets, now readable with the new key alone.
        let only_new = Keyring::new(&[2; 32]);
        let after = secrets(&mut c(&pool).await, &only_new, legacy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, before);
        let r = secrets(&mut c(&pool).await, &only_new, rotated)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.current.as_deref(), Some("whsec_r"));
        }).await;
    }

    fn after(position: ChangePosition, account_id: Uuid) -> AccountFilter {
        AccountFilter {
            account_id,
            phlo_id: None,
            run_id: None,
            status: None,
            changed_since: None,
            page: ChangePage::After(position),
            limit: 100,
        }
    }

    const START: ChangePosition = ChangePosition {
        xid: 0,
        id: Uuid::nil(),
    };

    fn ids(listing: &AccountListing) -> Vec<Uuid> {
        listing.deliveries.iter().map(|d| d.delivery.id).collect()
    }

    /// The listing once it holds `count` deliveries: the horizon is cluster-wide, so a transaction of
    /// another test (another database) may hold a change back for a moment.
    async fn listed(conn: &mut Conn, f: &AccountFilter, count: usize) -> AccountListing {
        for _ in 0..200 {
            let listing = list_for_account(conn, f).await.unwrap();
            if listing.deliveries.len() >= count {
                return listing;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("never listed {count} deliveries");
    }

    #[tokio::test]
    async fn the_account_listing_holds_back_changes_behind_a_transaction_still_open() {
        crate::testing::on_both(|pool| async move {
        let (account, _, run) = fixture(&mut c(&pool).await).await;
        let (first, _) = new(&mut c(&pool).await, run, "https://example.com/a").await;
        let seen = listed(&mut c(&pool).await, &after(START, account), 1).await;
        assert_eq!(ids(&seen), [first]);
        let cursor = seen.deliveries[0].position;

        // A step transaction takes its id first but commits after another one. SQLite has one
        // writer (and the pool one connection): transactions commit in the order they write.
        let (early, late, horizon) = if pool.backend() == crate::Backend::Postgres {
            let mut slow = pool.begin().await.unwrap();
            let (early, _) = new(&mut slow, run, "https://example.com/b").await;
            let (late, _) = new(&mut c(&pool).await, run, "https://example.com/c").await;
            let meanwhile = list_for_account(&mut c(&pool).await, &after(cursor, account))
                .await
                .unwrap();
            assert!(
                meanwhile.deliveries.is_empty(),
                "{late} is held back while {early} may still commit before it"
            );
            assert!(meanwhile.horizon > cursor);
            slow.commit().await.unwrap();
            (early, late, meanwhile.horizon)
        } else {
            let (early, _) = new(&mut c(&pool).await, run, "https://example.com/b").await;
            let (late, _) = new(&mut c(&pool).await, run, "https://example.com/c").await;
            (early, late, cursor)
        };
        let resumed = listed(&mut c(&pool).await, &after(horizon, account), 2).await;
        assert_eq!(ids(&resumed), [early, late], "in commit-id order");

        // A later change (an attempt) lists the delivery again, after the cursor.
        let cursor = resumed.deliveries[1].position;
        claimed(&pool, first).await;
        let again = listed(&mut c(&pool).await, &after(cursor, account), 1).await;
        assert_eq!(ids(&again), [first]);
        assert_eq!(again.deliveries[0].attempts[0].outcome, "in_progress");

        // An attempt finishing after a later one took over changes only its log row: its delivery is
        // still listed again, with that result.
        crate::on!(&mut c(&pool).await, |db, dialect| sqlx::query(dialect.sql("UPDATE callback_deliveries SET lease_until = now() - make_interval(secs => 1) WHERE id = $1",))
        .bind(first)
        .execute(&mut *db)
        .await.map(|r| r.rows_affected()))
        .unwrap();
        claimed(&pool, first).await;
        let cursor = listed(&mut c(&pool).await, &after(cursor, account), 1)
            .await
            .deliveries[0]
            .position;
        assert!(
            !finish(&mut c(&pool).await, first, 1, &retry(1.0, true))
                .await
                .unwrap()
        );
        let late_result = listed(&mut c(&pool).await, &after(cursor, account), 1).await;
        assert_eq!(ids(&late_result), [first]);
        let outcomes: Vec<&str> = late_result.deliveries[0]
            .attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect();
        assert_eq!(outcomes, ["retry", "in_progress"]);

        // Newest first, and only the account's own.
        let newest = listed(
            &mut c(&pool).await,
            &AccountFilter {
                page: ChangePage::Newest { before: None },
                ..after(START, account)
            },
            3,
        )
        .await;
        assert_eq!(ids(&newest), [first, late, early]);
        let (stranger, _, _) = fixture(&mut c(&pool).await).await;
        assert!(
            list_for_account(&mut c(&pool).await, &after(START, stranger))
                .await
                .unwrap()
                .deliveries
                .is_empty()
        );
        }).await;
    }

    #[tokio::test]
    async fn positions_order_as_numbers_not_as_text() {
        crate::testing::on_both(|pool| async move {
            let (account, _, run) = fixture(&mut c(&pool).await).await;
            let (ten, _) = new(&mut c(&pool).await, run, "https://example.com/a").await;
            let (nine, _) = new(&mut c(&pool).await, run, "https://example.com/b").await;
            // Transaction ids 9 and 10 (as text, "10" < "9"); the stamp is lifted to write them.
            crate::on!(&mut c(&pool).await, |db, dialect| {
                sqlx::query(dialect.pick(
                "ALTER TABLE callback_deliveries DISABLE TRIGGER callback_deliveries_stamp_change",
                // The stamp leaves an explicit change alone; the counter is where the next one starts.
                "UPDATE callback_change_counter SET value = 10",
            ))
            .execute(&mut *db)
            .await
            .map(|r| r.rows_affected())
            })
            .unwrap();
            for (id, xid) in [(ten, "10"), (nine, "9")] {
                crate::on!(&mut c(&pool).await, |db, dialect| {
                    sqlx::query(dialect.pick(
                    "UPDATE callback_deliveries SET change_xid = $2::text::xid8 WHERE id = $1",
                    "UPDATE callback_deliveries SET change_xid = CAST($2 AS INTEGER) WHERE id = $1",
                ))
                .bind(id)
                .bind(xid)
                .execute(&mut *db)
                .await
                .map(|r| r.rows_affected())
                })
                .unwrap();
            }
            let tail = listed(&mut c(&pool).await, &after(START, account), 2).await;
            assert_eq!(ids(&tail), [nine, ten]);
            assert_eq!(
                tail.deliveries[1].position,
                ChangePosition { xid: 10, id: ten }
            );
            let newest = list_for_account(
                &mut c(&pool).await,
                &AccountFilter {
                    page: ChangePage::Newest { before: None },
                    ..after(START, account)
                },
            )
            .await
            .unwrap();
            assert_eq!(ids(&newest), [ten, nine]);
        })
        .await;
    }
}
