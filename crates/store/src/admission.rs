//! Admission: how many runs an account may have active at once, and its queued runs, admitted oldest
//! first. The count is of the rows themselves (no counter to drift from them), and no lock is taken:
//! a per-account lock held until commit serialises the ends of all of one account's runs, which capped
//! one account at about a hundred runs per second on a small machine and, worse, parked every worker
//! slot on that lock, starving the other accounts the cap is there to protect.
//!
//! Without the lock, transactions admitting for the same account at the same moment each see the
//! others' uncommitted changes as not yet made. Ends and admissions cancel out (each frees and fills one
//! slot), so the only effect is that concurrent starts may each take the same free slot: the cap can be
//! exceeded by the number of transactions starting runs for that account at once, and only until those
//! runs end. `FOR UPDATE SKIP LOCKED` keeps any queued run from being admitted twice.

use crate::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

/// How many more runs the account may have active now: its cap (its own override, else `default_cap`)
/// minus its active runs; 0 when it is full (or over it: incoming calls bypass the queue). A default
/// cap of 0 means no cap (`i64::MAX`, nothing counted) for accounts without their own.
pub async fn free_slots(conn: &mut Conn, account_id: Uuid, default_cap: i64) -> Result<i64> {
    // The count stops at the cap: past it the exact number does not matter, and an account with many
    // active runs must not make every start and end scan all of them.
    let (free,): (i64,) = crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql("WITH c AS (SELECT coalesce((SELECT max_active_runs FROM account_limits WHERE account_id = $1)::bigint, $2) AS cap)
         SELECT CASE WHEN cap = 0 THEN 9223372036854775807
                     ELSE cap - (SELECT count(*) FROM (SELECT 1 FROM runs WHERE account_id = $1 AND status = 'active'
                                                       LIMIT (SELECT cap FROM c)) active)
                END
         FROM c",))
    .bind(account_id)
    .bind(default_cap)
    .fetch_one(&mut *db)
    .await
    })?;
    Ok(free)
}

/// What starting a run of a PHLO needs to know, read in one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct StartCheck {
    pub phlo_id: Uuid,
    /// The PHLO's current revision: the one a new run executes.
    pub revision: i32,
    /// Nobody of the account is queued and it has a free slot ([`has_queued`], [`free_slots`]).
    pub at_once: bool,
}

/// `chk`: [`StartCheck`] of PHLO `$2` for account `$1`, whose default cap is `$3`; no row for an unknown
/// PHLO or another account's. The count stops at the cap, as in [`free_slots`].
macro_rules! start_check {
    () => {
        "WITH c AS (SELECT coalesce((SELECT max_active_runs FROM account_limits WHERE account_id = $1)::bigint, $3) AS cap),
         chk AS (
             SELECT p.id AS phlo_id, p.revision,
                    (NOT EXISTS (SELECT 1 FROM runs WHERE account_id = $1 AND status = 'queued')
                     AND (c.cap = 0
                          OR (SELECT count(*) FROM (SELECT 1 FROM runs WHERE account_id = $1 AND status = 'active'
                                                    LIMIT (SELECT cap FROM c)) active) < c.cap)) AS at_once
             FROM phlos p, c WHERE p.id = $2 AND p.account_id = $1)"
    };
}
pub(crate) use start_check;

/// The PHLO's current revision and whether a new run may start at once; `None` for an unknown PHLO or
/// another account's.
pub async fn check_start(
    conn: &mut Conn,
    account_id: Uuid,
    phlo_id: Uuid,
    default_cap: i64,
) -> Result<Option<StartCheck>> {
    Ok(crate::on!(conn, |db, dialect| {
        sqlx::query_as(dialect.sql(concat!(
            start_check!(),
            " SELECT phlo_id, revision, at_once FROM chk"
        )))
        .bind(account_id)
        .bind(phlo_id)
        .bind(default_cap)
        .fetch_optional(&mut *db)
        .await
    })?)
}

/// Whether the account has runs waiting for a slot (the partial index `runs_queued` answers it).
pub async fn has_queued(conn: &mut Conn, account_id: Uuid) -> Result<bool> {
    let (queued,): (bool,) = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect
            .sql("SELECT EXISTS (SELECT 1 FROM runs WHERE account_id = $1 AND status = 'queued')",)
    )
    .bind(account_id)
    .fetch_one(&mut *db)
    .await)?;
    Ok(queued)
}

/// A queued run that has just been made active; its first token and step message are the caller's to
/// write in the same transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Admitted {
    pub id: Uuid,
    pub phlo_id: Uuid,
    pub revision: i32,
    pub created_at: DateTime<Utc>,
}

/// Makes up to `n` of the account's queued runs active, oldest first, and returns them oldest first.
/// `SKIP LOCKED`: a queued run being cancelled right now is not waited for.
pub async fn admit_oldest(conn: &mut Conn, account_id: Uuid, n: i64) -> Result<Vec<Admitted>> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    let mut admitted: Vec<Admitted> = crate::on!(conn, |db, dialect| sqlx::query_as(dialect.sql(
        "UPDATE runs SET status = 'active', updated_at = now()
         WHERE id IN (SELECT id FROM runs WHERE account_id = $1 AND status = 'queued'
                      ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id, phlo_id, revision, created_at",
    ))
    .bind(account_id)
    .bind(n)
    .fetch_all(&mut *db)
    .await)?;
    admitted.sort_by_key(|a| (a.created_at, a.id));
    Ok(admitted)
}

/// Accounts that have queued runs, for the reconciler.
pub async fn accounts_with_queued(conn: &mut Conn, limit: i64) -> Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = crate::on!(conn, |db, dialect| sqlx::query_as(
        dialect.sql("SELECT DISTINCT account_id FROM runs WHERE status = 'queued' LIMIT $1")
    )
    .bind(limit)
    .fetch_all(&mut *db)
    .await)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    async fn run(conn: &mut Conn, account: Uuid, phlo: Uuid, status: &str) -> Uuid {
        let id = Uuid::now_v7();
        crate::on!(&mut *conn, |db, dialect| sqlx::query(dialect.sql(
            "INSERT INTO runs (id, account_id, phlo_id, revision, status, trigger_type, trigger)
             VALUES ($1, $2, $3, 1, $4, 'api', '{}')",
        ))
        .bind(id)
        .bind(account)
        .bind(phlo)
        .bind(status)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        id
    }

    #[tokio::test]
    async fn free_slots_count_up_to_the_cap_and_a_cap_of_0_counts_nothing() {
        crate::testing::on_both(|pool| async move {
            let mut conn = pool.acquire().await.unwrap();
            let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
            for _ in 0..3 {
                run(&mut conn, account, phlo, "active").await;
            }
            assert_eq!(free_slots(&mut conn, account, 5).await.unwrap(), 2);
            assert_eq!(free_slots(&mut conn, account, 3).await.unwrap(), 0);
            // Over the cap (incoming calls bypass it): full, not negative.
            assert_eq!(free_slots(&mut conn, account, 2).await.unwrap(), 0);
            assert_eq!(free_slots(&mut conn, account, 0).await.unwrap(), i64::MAX);

            // The account's own cap wins over the default, also over "no cap".
            crate::on!(&mut conn, |db, dialect| sqlx::query(dialect.sql(
                "INSERT INTO account_limits (account_id, max_active_runs) VALUES ($1, 4)"
            ))
            .bind(account)
            .execute(&mut *db)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            assert_eq!(free_slots(&mut conn, account, 0).await.unwrap(), 1);

            assert!(!has_queued(&mut conn, account).await.unwrap());
            let first = run(&mut conn, account, phlo, "queued").await;
            let second = run(&mut conn, account, phlo, "queued").await;
            assert!(has_queued(&mut conn, account).await.unwrap());
            let admitted: Vec<Uuid> = admit_oldest(&mut conn, account, 1)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect();
            assert_eq!(admitted, vec![first], "oldest first, no more than asked");
            assert_eq!(
                accounts_with_queued(&mut conn, 10).await.unwrap(),
                vec![account]
            );
            let rest: Vec<Uuid> = admit_oldest(&mut conn, account, i64::MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect();
            assert_eq!(rest, vec![second]);
            assert!(!has_queued(&mut conn, account).await.unwrap());
        })
        .await;
    }
}
