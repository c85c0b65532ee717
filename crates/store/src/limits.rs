//! Per-account overrides of the operator's fair-use defaults (rates of API calls and new runs, the cap
//! of active runs). A missing row, or a NULL field, means the default.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct AccountLimits {
    /// API requests per second (0: unlimited).
    pub api_per_sec: Option<f64>,
    /// API requests allowed at once after a quiet period.
    pub api_burst: Option<i32>,
    /// New runs per second (0: unlimited).
    pub runs_per_sec: Option<f64>,
    pub runs_burst: Option<i32>,
    /// Active runs at once; more are queued.
    pub max_active_runs: Option<i32>,
}

/// The overrides of an account, by id; all `None` when it has none.
pub async fn get(conn: &mut Conn, account_id: Uuid) -> Result<AccountLimits> {
    let row: Option<AccountLimits> = crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql(
        "SELECT api_per_sec, api_burst, runs_per_sec, runs_burst, max_active_runs
         FROM account_limits WHERE account_id = $1",
    ))
    .bind(account_id)
    .fetch_optional(&mut *db)
    .await)?;
    Ok(row.unwrap_or_default())
}

/// An account's overrides with when they were last set (`None` if never).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    #[sqlx(flatten)]
    pub limits: AccountLimits,
    pub updated_at: Option<DateTime<Utc>>,
}

/// An account's overrides, by auth id; `None` when no account has that auth id.
pub async fn get_by_auth_id(conn: &mut Conn, auth_id: &str) -> Result<Option<Stored>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("SELECT l.api_per_sec, l.api_burst, l.runs_per_sec, l.runs_burst, l.max_active_runs, l.updated_at
         FROM accounts a LEFT JOIN account_limits l ON l.account_id = a.id WHERE a.auth_id = $1",))
    .bind(auth_id)
    .fetch_optional(&mut *db)
    .await
    })?)
}

/// Replaces the overrides of the account with this auth id. Returns the account's id, or `None` when no
/// account has that auth id.
pub async fn set_by_auth_id(
    conn: &mut Conn,
    auth_id: &str,
    limits: &AccountLimits,
) -> Result<Option<Uuid>> {
    let row: Option<(Uuid,)> = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("INSERT INTO account_limits
             (account_id, api_per_sec, api_burst, runs_per_sec, runs_burst, max_active_runs, updated_at)
         SELECT id, $2, $3, $4, $5, $6, now() FROM accounts WHERE auth_id = $1
         ON CONFLICT (account_id) DO UPDATE SET
             api_per_sec = EXCLUDED.api_per_sec, api_burst = EXCLUDED.api_burst,
             runs_per_sec = EXCLUDED.runs_per_sec, runs_burst = EXCLUDED.runs_burst,
             max_active_runs = EXCLUDED.max_active_runs, updated_at = now()
         RETURNING account_id",))
    .bind(auth_id)
    .bind(limits.api_per_sec)
    .bind(limits.api_burst)
    .bind(limits.runs_per_sec)
    .bind(limits.runs_burst)
    .bind(limits.max_active_runs)
    .fetch_optional(&mut *db)
    .await
    })?;
    Ok(row.map(|(id,)| id))
}
