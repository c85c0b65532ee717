//! Every store function that the modules' own tests do not reach, on both backends: each runs its
//! statements on Postgres and on SQLite (`phlo dev`), and the two must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, SubsecRound, Utc};
use phlo_flow::{Context, Trigger, Wait, WaitOn};
use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use crate::testing::on_both;
use crate::{Conn, Pool};

async fn live(conn: &mut Conn, run_id: Uuid) -> usize {
    let tokens = crate::tokens::list(conn, run_id).await.unwrap();
    tokens.iter().filter(|t| t.status != "ended").count()
}

async fn c(pool: &Pool) -> Conn {
    pool.acquire().await.unwrap()
}

fn api_trigger(params: serde_json::Value) -> Trigger {
    Trigger::Api {
        request_uuid: "req-1".into(),
        params: params.as_object().cloned().unwrap_or_default(),
    }
}

async fn new_run(conn: &mut Conn, account: Uuid, phlo: Uuid, status: &str, text: &str) -> Uuid {
    let id = Uuid::now_v7();
    crate::runs::create(
        conn,
        &crate::runs::NewRun {
            id,
            account_id: account,
            phlo_id: phlo,
            revision: 1,
            trigger_type: "api",
            trigger: &api_trigger(json!({ "text": text })),
            from_number: Some("+15550001"),
            to_number: Some("+15550002"),
            status,
        },
    )
    .await
    .unwrap();
    id
}

/// The migration applies, and a time bound by sqlx compares with the SQL `now()` (timers and leases
/// compare the two).
#[tokio::test]
async fn bound_times_and_sql_now_compare_in_time_order() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let now = Utc::now();
        for (bound, earlier) in [
            (now - Duration::seconds(2), true),
            (now - Duration::milliseconds(1500), true),
            (now + Duration::seconds(2), false),
            (now + Duration::milliseconds(1500), false),
            // Whole seconds are written without a fraction.
            (
                DateTime::from_timestamp(now.timestamp() - 2, 0).unwrap(),
                true,
            ),
            (
                DateTime::from_timestamp(now.timestamp() + 2, 0).unwrap(),
                false,
            ),
        ] {
            let (before_now, sorts_first): (bool, bool) = crate::on!(&mut conn, |db, dialect| {
                sqlx::query_as(dialect.sql(
                    "SELECT $1::timestamptz < now(),
                            (SELECT min(t) FROM (SELECT $1::timestamptz AS t UNION ALL SELECT now()) x)
                                = $1::timestamptz",
                ))
                .bind(bound)
                .fetch_one(&mut *db)
                .await
            })
            .unwrap();
            assert_eq!((before_now, sorts_first), (earlier, earlier), "{bound}");
        }
        // A timestamp written by `now()` reads back as a time close to the clock's.
        let (read,): (DateTime<Utc>,) =
            crate::on!(&mut conn, |db, dialect| sqlx::query_as(dialect.sql(
                "SELECT now() + make_interval(secs => $1)"
            ))
            .bind(60.0)
            .fetch_one(&mut *db)
            .await)
            .unwrap();
        let off = (read - Utc::now() - Duration::seconds(60)).num_milliseconds().abs();
        assert!(off < 5_000, "{read}");
    })
    .await;
}

#[tokio::test]
async fn accounts_phlos_and_revisions() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let account = crate::accounts::create(&mut conn, Uuid::now_v7(), "MA1", b"hash", "Acme")
            .await
            .unwrap();
        let found = crate::accounts::find_by_auth_id(&mut conn, "MA1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id, found.token_hash, found.name),
            (account.id, b"hash".to_vec(), "Acme".into())
        );
        assert!(
            crate::accounts::find_by_auth_id(&mut conn, "nope")
                .await
                .unwrap()
                .is_none()
        );

        let def = json!({ "nodes": [] });
        let a = crate::phlos::create(&mut conn, Uuid::now_v7(), account.id, "a", &def)
            .await
            .unwrap();
        let b = crate::phlos::create(&mut conn, Uuid::now_v7(), account.id, "b", &def)
            .await
            .unwrap();
        assert_eq!((a.revision, a.latest_revision), (1, 1));
        let got = crate::phlos::get(&mut conn, account.id, a.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.name, "a");
        assert!(
            crate::phlos::get(&mut conn, Uuid::now_v7(), a.id)
                .await
                .unwrap()
                .is_none()
        );
        let all: Vec<Uuid> = crate::phlos::list(&mut conn, account.id, 10, None)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(all, [b.id, a.id], "newest first");
        let page: Vec<Uuid> =
            crate::phlos::list(&mut conn, account.id, 10, Some((b.created_at, b.id)))
                .await
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect();
        assert_eq!(page, [a.id], "after the cursor");

        let v2 = json!({ "nodes": [1] });
        let updated = crate::phlos::update(&mut conn, account.id, a.id, "a2", &v2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                updated.revision,
                updated.latest_revision,
                updated.name.as_str()
            ),
            (2, 2, "a2")
        );
        assert!(
            crate::phlos::update(&mut conn, Uuid::now_v7(), a.id, "x", &v2)
                .await
                .unwrap()
                .is_none()
        );
        let back = crate::phlos::set_revision(&mut conn, account.id, a.id, 1, "a1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((back.revision, back.latest_revision), (1, 2));
        assert!(
            crate::phlos::set_revision(&mut conn, account.id, a.id, 7, "x")
                .await
                .unwrap()
                .is_none()
        );
        let r2 = crate::phlos::revision(&mut conn, a.id, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r2.definition.0, v2);
        let revs: Vec<i32> = crate::phlos::revisions(&mut conn, a.id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(revs, [2, 1]);
    })
    .await;
}

#[tokio::test]
async fn runs_tokens_steps_and_their_listings() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        let first = new_run(&mut conn, account, phlo, "active", "hello 50%_off").await;
        let second = new_run(&mut conn, account, phlo, "queued", "plain").await;

        let run = crate::runs::get(&mut conn, account, first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (run.status.as_str(), run.steps, run.next_token),
            ("active", 0, 1)
        );
        assert_eq!(
            run.trigger.0,
            api_trigger(json!({ "text": "hello 50%_off" }))
        );
        assert!(
            crate::runs::get(&mut conn, Uuid::now_v7(), first)
                .await
                .unwrap()
                .is_none()
        );
        // One connection at a time: a SQLite pool holds one.
        drop(conn);
        let mut tx = pool.begin().await.unwrap();
        assert!(crate::runs::lock(&mut tx, first).await.unwrap().is_some());
        crate::runs::record_steps(&mut tx, first, 3).await.unwrap();
        assert_eq!(
            crate::runs::allocate_tokens(&mut tx, first, 2)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            crate::runs::allocate_tokens(&mut tx, first, 1)
                .await
                .unwrap(),
            3
        );
        crate::runs::set_error(&mut tx, first, "boom")
            .await
            .unwrap();
        crate::runs::set_error(&mut tx, first, "later")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = c(&pool).await;
        let run = crate::runs::find(&mut conn, first).await.unwrap().unwrap();
        assert_eq!(
            (run.steps, run.next_token, run.error.as_deref()),
            (3, 4, Some("boom"))
        );

        // Listings: filters, the text search (LIKE wildcards are literal), the cursor.
        let filter = |f: crate::runs::Filter| crate::runs::Filter {
            account_id: account,
            limit: 10,
            ..f
        };
        let ids = |runs: Vec<crate::runs::Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let all = ids(crate::runs::list(&mut conn, &filter(Default::default()))
            .await
            .unwrap());
        assert_eq!(all, [second, first]);
        let queued = filter(crate::runs::Filter {
            status: Some("queued".into()),
            phlo_id: Some(phlo),
            trigger_type: Some("api".into()),
            phone_number: Some("+15550002".into()),
            created_after: Some(Utc::now() - Duration::hours(1)),
            created_before: Some(Utc::now() + Duration::hours(1)),
            ..Default::default()
        });
        assert_eq!(
            ids(crate::runs::list(&mut conn, &queued).await.unwrap()),
            [second]
        );
        for (text, expected) in [
            ("HELLO", vec![first]),
            ("50%_off", vec![first]),
            ("0%_o", vec![first]),
            ("5_%", vec![]),
            ("%", vec![first]),
            ("plain", vec![second]),
            ("BOOM", vec![first]), // the run's error
        ] {
            let f = filter(crate::runs::Filter {
                text: Some(text.into()),
                ..Default::default()
            });
            assert_eq!(
                ids(crate::runs::list(&mut conn, &f).await.unwrap()),
                expected,
                "{text}"
            );
        }
        let newest = crate::runs::get(&mut conn, account, second)
            .await
            .unwrap()
            .unwrap();
        let f = filter(crate::runs::Filter {
            before: Some((newest.created_at, newest.id)),
            ..Default::default()
        });
        assert_eq!(
            ids(crate::runs::list(&mut conn, &f).await.unwrap()),
            [first]
        );
        let cutoff = Utc::now() + Duration::seconds(5);
        assert_eq!(
            crate::runs::active_before(&mut conn, cutoff, 10)
                .await
                .unwrap(),
            [first]
        );
        assert!(
            crate::runs::active_before(&mut conn, Utc::now() - Duration::hours(1), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Tokens.
        let token = |n: i32, status: &str| crate::tokens::Token {
            run_id: first,
            token: n,
            node_id: Uuid::now_v7(),
            status: status.into(),
            seq: 1,
            wait_id: (status == "waiting").then_some(7),
            wait: (status == "waiting").then(|| {
                Json(Wait {
                    on: WaitOn::Digits,
                    timeout_secs: 5,
                    variables: Default::default(),
                })
            }),
            context: Json(Context::default()),
            repeats: 0,
            ended_reason: None,
            updated_at: Utc::now(),
        };
        crate::tokens::save(&mut conn, &token(1, "ready"))
            .await
            .unwrap();
        crate::tokens::save(&mut conn, &token(2, "waiting"))
            .await
            .unwrap();
        let mut moved = token(1, "ready");
        moved.seq = 2;
        crate::tokens::save(&mut conn, &moved).await.unwrap();
        let t1 = crate::tokens::get(&mut conn, first, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((t1.seq, t1.node_id), (2, moved.node_id));
        let t2 = crate::tokens::get(&mut conn, first, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (t2.wait_id, t2.wait.map(|w| w.0.on)),
            (Some(7), Some(WaitOn::Digits))
        );
        assert_eq!(
            crate::tokens::list(&mut conn, first).await.unwrap().len(),
            2
        );
        assert_eq!(live(&mut conn, first).await, 2);
        let later = Utc::now() + Duration::seconds(5);
        assert_eq!(
            crate::tokens::stale_ready(&mut conn, later, 10)
                .await
                .unwrap(),
            [(first, 1, 2)]
        );
        assert!(
            crate::tokens::stale_ready(&mut conn, Utc::now() - Duration::hours(1), 10)
                .await
                .unwrap()
                .is_empty()
        );
        crate::tokens::touch(&mut conn, first, 1).await.unwrap();
        assert_eq!(
            crate::tokens::end_all(&mut conn, first, "cancelled")
                .await
                .unwrap(),
            2
        );
        assert_eq!(live(&mut conn, first).await, 0);

        // Steps: one message's steps in one call, and more than one statement's worth.
        let started = Utc::now();
        let step = |token, seq| crate::steps::Step {
            run_id: first,
            token,
            seq,
            node_id: Uuid::nil(),
            node_name: "Start".into(),
            node_type: "start".into(),
            event: "enter".into(),
            outcome: "done".into(),
            state: None,
            variables: Json(json!({ "secret": "needle" })),
            effects: Json(json!([])),
            error: None,
            started_at: started,
            finished_at: started + Duration::milliseconds(i64::from(seq)),
        };
        crate::steps::insert(&mut conn, &[step(1, 1), step(1, 2)])
            .await
            .unwrap();
        let many: Vec<_> = (0..300).map(|seq| step(2, seq)).collect();
        crate::steps::insert(&mut conn, &many).await.unwrap();
        let all = crate::steps::list(&mut conn, first).await.unwrap();
        assert_eq!(all.iter().filter(|s| s.token == 2).count(), 300);
        crate::on!(&mut conn, |db, dialect| sqlx::query(
            dialect.sql("DELETE FROM steps WHERE run_id = $1 AND token = 2")
        )
        .bind(first)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let steps = crate::steps::list(&mut conn, first).await.unwrap();
        assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(steps[0].variables.0, json!({ "secret": "needle" }));
        let f = filter(crate::runs::Filter {
            text: Some("NEEDLE".into()),
            ..Default::default()
        });
        assert_eq!(
            ids(crate::runs::list(&mut conn, &f).await.unwrap()),
            [first],
            "in step variables"
        );

        assert_eq!(
            crate::runs::finish(&mut conn, first, "cancelled", None)
                .await
                .unwrap(),
            Some(account)
        );
        assert_eq!(
            crate::runs::finish(&mut conn, first, "failed", None)
                .await
                .unwrap(),
            None
        );
        let run = crate::runs::find(&mut conn, first).await.unwrap().unwrap();
        assert_eq!(run.status, "cancelled");
        assert!(run.ended_at.is_some());
    })
    .await;
}

/// What a step message does to the run row: start it (one statement), lock it with its token, and
/// count its steps, ending it once no token is live.
#[tokio::test]
async fn a_run_started_locked_with_its_token_and_settled() {
    on_both(|pool| async move {
        let mut conn = pool.begin_atomic().await.unwrap();
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        conn.commit().await.unwrap();
        let id = Uuid::now_v7();
        let trigger = api_trigger(json!({ "n": 1 }));
        let token = |n, status: &str| crate::tokens::Token {
            run_id: id,
            token: n,
            node_id: Uuid::now_v7(),
            status: status.into(),
            seq: 0,
            wait_id: None,
            wait: None,
            context: Json(Context::default()),
            repeats: 0,
            ended_reason: None,
            updated_at: Utc::now(),
        };
        let first = token(0, "ready");
        let message = crate::outbox::NewMessage {
            subject: "s.step",
            msg_id: "m-start",
            payload: b"go",
            traceparent: Some("tp"),
        };
        // Starts run `id` of `revision` under a default cap of `cap`, if it may.
        let start = |id, revision, cap| {
            let (pool, trigger, first) = (pool.clone(), trigger.clone(), first.clone());
            async move {
                let mut conn = pool.begin_atomic().await.unwrap();
                let run = crate::runs::NewRun {
                    id,
                    account_id: account,
                    phlo_id: phlo,
                    revision,
                    trigger_type: "api",
                    trigger: &trigger,
                    from_number: None,
                    to_number: None,
                    status: "active",
                };
                let mut first = first;
                first.run_id = id;
                let started = crate::runs::start(&mut conn, &run, &first, &message, cap)
                    .await
                    .unwrap();
                conn.commit().await.unwrap();
                started
            }
        };
        assert_eq!(start(id, 2, 0).await, None, "not the current revision");
        let outbox_id = start(id, 1, 0).await.expect("started");
        assert_eq!(
            start(Uuid::now_v7(), 1, 1).await,
            None,
            "the account is full"
        );
        assert!(
            start(Uuid::now_v7(), 1, 2).await.is_some(),
            "a slot is free"
        );
        new_run(&mut c(&pool).await, account, phlo, "queued", "waits").await;
        assert_eq!(start(Uuid::now_v7(), 1, 0).await, None, "a run is queued");
        let runs = crate::runs::list(
            &mut c(&pool).await,
            &crate::runs::Filter {
                account_id: account,
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            runs.len(),
            3,
            "two started, one queued; the refused wrote nothing"
        );
        {
            let mut conn = c(&pool).await;
            let messages = crate::outbox::claim_stale(&mut conn, -1.0, 10)
                .await
                .unwrap();
            assert_eq!(messages.len(), 2, "a message for each started run");
        }

        let mut conn = c(&pool).await;
        let stale = crate::outbox::claim_stale(&mut conn, -1.0, 10)
            .await
            .unwrap();
        assert_eq!(
            stale
                .iter()
                .filter(|m| m.id == outbox_id)
                .map(|m| (
                    m.id,
                    m.msg_id.as_str(),
                    m.payload.as_slice(),
                    m.traceparent.as_deref()
                ))
                .collect::<Vec<_>>(),
            [(outbox_id, "m-start", &b"go"[..], Some("tp"))]
        );
        let (run, t) = crate::runs::lock_with_token(&mut conn, id, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((run.id, run.status.as_str(), run.steps), (id, "active", 0));
        let t = t.unwrap();
        assert_eq!(
            (t.run_id, t.token, t.node_id, t.status.as_str(), t.seq),
            (id, 0, first.node_id, "ready", 0)
        );
        let (_, none) = crate::runs::lock_with_token(&mut conn, id, 5)
            .await
            .unwrap()
            .unwrap();
        assert!(none.is_none(), "a run without that token");
        assert!(
            crate::runs::lock_with_token(&mut conn, Uuid::now_v7(), 0)
                .await
                .unwrap()
                .is_none()
        );

        // The message's own token ends (written by settle with its step rows) while a second token is
        // still parked: the steps are counted, the run goes on.
        let step = |token, seq| crate::steps::Step {
            run_id: id,
            token,
            seq,
            node_id: Uuid::nil(),
            node_name: "Branch".into(),
            node_type: "branch".into(),
            event: "enter".into(),
            outcome: "done".into(),
            state: Some("yes".into()),
            variables: Json(json!({})),
            effects: Json(json!([])),
            error: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
        };
        crate::tokens::save(&mut conn, &token(1, "waiting"))
            .await
            .unwrap();
        let mut ended_token = token(0, "ended");
        ended_token.seq = 3;
        let settled = crate::runs::settle(
            &mut conn,
            id,
            &[step(0, 0), step(0, 1), step(0, 2)],
            Some(&ended_token),
        )
        .await
        .unwrap();
        assert!(settled.is_none());
        let run = crate::runs::get(&mut conn, account, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (run.status.as_str(), run.steps, run.ended_at),
            ("active", 3, None)
        );
        let t0 = crate::tokens::get(&mut conn, id, 0).await.unwrap().unwrap();
        assert_eq!((t0.status.as_str(), t0.seq), ("ended", 3));
        assert_eq!(crate::steps::list(&mut conn, id).await.unwrap().len(), 3);
        // Nothing written, a token still live: still nothing ends.
        assert!(
            crate::runs::settle(&mut conn, id, &[], None)
                .await
                .unwrap()
                .is_none()
        );

        // The last live token ends in the statement itself (its stored row still says `waiting`), with an
        // error recorded: the run fails, and says the account has a queued run for the slot.
        crate::runs::set_error(&mut conn, id, "Hangup: boom")
            .await
            .unwrap();
        let ended = crate::runs::settle(&mut conn, id, &[step(1, 0)], Some(&token(1, "ended")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (ended.account_id, ended.status.as_str(), ended.has_queued),
            (account, "failed", true)
        );
        let run = crate::runs::get(&mut conn, account, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((run.status.as_str(), run.steps), ("failed", 4));
        assert_eq!(live(&mut conn, id).await, 0);
        assert!(run.ended_at.is_some());
    })
    .await;
}

#[tokio::test]
async fn timers_outbox_and_counters() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        let run = new_run(&mut conn, account, phlo, "active", "").await;

        // Postgres keeps microseconds.
        let now = Utc::now().trunc_subsecs(6);
        let timer = |token: i32, wait_id: i32, secs: i64| crate::timers::Timer {
            run_id: run,
            token,
            wait_id,
            fire_at: now + Duration::seconds(secs),
        };
        crate::timers::set(&mut conn, &timer(1, 1, 100))
            .await
            .unwrap();
        crate::timers::set(&mut conn, &timer(1, 1, -2))
            .await
            .unwrap(); // moved earlier
        crate::timers::set(&mut conn, &timer(2, 1, -1))
            .await
            .unwrap();
        crate::timers::set(&mut conn, &timer(3, 1, 60))
            .await
            .unwrap();
        crate::timers::set(&mut conn, &timer(4, 1, -1))
            .await
            .unwrap();
        crate::timers::clear(&mut conn, run, 4, 1).await.unwrap();
        let due = crate::timers::take_due(&mut conn, now, 1).await.unwrap();
        assert_eq!(due, [timer(1, 1, -2)], "the earliest, no more than asked");
        let due = crate::timers::take_due(&mut conn, now, 10).await.unwrap();
        assert_eq!(due, [timer(2, 1, -1)]);
        assert!(
            crate::timers::take_due(&mut conn, now, 10)
                .await
                .unwrap()
                .is_empty()
        );
        crate::timers::clear_run(&mut conn, run).await.unwrap();
        let far = now + Duration::days(1);
        assert!(
            crate::timers::take_due(&mut conn, far, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let a = crate::outbox::insert(&mut conn, "s.a", "m-a", b"one", Some("tp"))
            .await
            .unwrap();
        let b = crate::outbox::insert(&mut conn, "s.b", "m-b", b"two", None)
            .await
            .unwrap();
        let c3 = crate::outbox::insert(&mut conn, "s.c", "m-c", b"three", None)
            .await
            .unwrap();
        assert!(a < b && b < c3);
        assert_eq!(crate::outbox::backlog(&mut conn).await.unwrap(), 3);
        assert!(
            crate::outbox::claim_stale(&mut conn, 60.0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let stale = crate::outbox::claim_stale(&mut conn, 0.0, 10)
            .await
            .unwrap();
        let got: Vec<_> = stale
            .iter()
            .map(|m| (m.id, m.subject.as_str(), m.payload.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (a, "s.a", &b"one"[..]),
                (b, "s.b", b"two"),
                (c3, "s.c", b"three")
            ]
        );
        assert_eq!(stale[0].traceparent.as_deref(), Some("tp"));
        crate::outbox::delete(&mut conn, &[a, c3]).await.unwrap();
        crate::outbox::delete(&mut conn, &[]).await.unwrap();
        assert_eq!(crate::outbox::backlog(&mut conn).await.unwrap(), 1);

        let (node, other) = (Uuid::now_v7(), Uuid::now_v7());
        for expected in 1..=3 {
            assert_eq!(
                crate::counters::increment(&mut conn, run, node, "run")
                    .await
                    .unwrap(),
                expected
            );
        }
        assert_eq!(
            crate::counters::increment(&mut conn, run, other, "run")
                .await
                .unwrap(),
            1
        );
        let list = crate::counters::list(&mut conn, run).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.iter().find(|c| c.node_id == node).unwrap().value, 3);
        assert_eq!(
            crate::counters::reset(&mut conn, run, Some(node))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            crate::counters::reset(&mut conn, run, None).await.unwrap(),
            1
        );
        assert!(
            crate::counters::list(&mut conn, run)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn numbers_calls_rooms_and_limits() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        let (stranger, stranger_phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();

        let n = crate::numbers::attach(&mut conn, "+1555", account, phlo)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n.account_id, n.phlo_id), (account, phlo));
        assert!(
            crate::numbers::attach(&mut conn, "+1555", stranger, stranger_phlo)
                .await
                .unwrap()
                .is_none(),
            "another account's number"
        );
        assert!(
            crate::numbers::attach(&mut conn, "+1555", account, phlo)
                .await
                .unwrap()
                .is_some()
        );
        crate::numbers::attach(&mut conn, "+1444", account, phlo)
            .await
            .unwrap()
            .unwrap();
        let listed: Vec<String> = crate::numbers::list(&mut conn, account)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.number)
            .collect();
        assert_eq!(listed, ["+1444", "+1555"]);
        assert_eq!(
            crate::numbers::route(&mut conn, "+1555")
                .await
                .unwrap()
                .unwrap()
                .phlo_id,
            phlo
        );
        assert!(
            !crate::numbers::detach(&mut conn, "+1555", stranger)
                .await
                .unwrap()
        );
        assert!(
            crate::numbers::detach(&mut conn, "+1555", account)
                .await
                .unwrap()
        );
        assert!(
            crate::numbers::route(&mut conn, "+1555")
                .await
                .unwrap()
                .is_none()
        );

        let run = new_run(&mut conn, account, phlo, "active", "").await;
        let call = |token: i32| crate::calls::NewCall {
            call_uuid: "call-1",
            run_id: run,
            token,
            direction: "inbound",
            from_number: "+1",
            to_number: "+2",
        };
        crate::calls::upsert(&mut conn, &call(1)).await.unwrap();
        crate::calls::upsert(&mut conn, &call(2)).await.unwrap();
        let got = crate::calls::get(&mut conn, "call-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.token, got.status.as_str()), (2, "in-progress"));
        assert_eq!(
            crate::calls::live_of_run(&mut conn, run).await.unwrap(),
            ["call-1"]
        );
        let ended = crate::calls::end(&mut conn, "call-1", Some("NORMAL"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (ended.status.as_str(), ended.hangup_cause.as_deref()),
            ("completed", Some("NORMAL"))
        );
        assert!(ended.ended_at.is_some());
        assert!(
            crate::calls::end(&mut conn, "call-1", None)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            crate::calls::live_of_run(&mut conn, run)
                .await
                .unwrap()
                .is_empty()
        );
        let action = json!({ "next": 1 });
        for (version, wait_id) in [(1, Some(3)), (2, None)] {
            let v = crate::calls::instruct(
                &mut conn,
                &crate::calls::NewInstruction {
                    call_uuid: "call-1",
                    run_id: run,
                    token: 2,
                    wait_id,
                    action: Some(&action),
                    xml: "<Response/>",
                },
            )
            .await
            .unwrap();
            assert_eq!(v, version);
        }
        let i = crate::calls::instruction(&mut conn, "call-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (i.version, i.wait_id, i.action.map(|a| a.0)),
            (2, None, Some(action))
        );
        assert!(
            crate::calls::claim_request(&mut conn, "msg-1")
                .await
                .unwrap()
        );
        assert!(
            !crate::calls::claim_request(&mut conn, "msg-1")
                .await
                .unwrap()
        );
        crate::calls::release_request(&mut conn, "msg-1")
            .await
            .unwrap();
        assert!(
            crate::calls::claim_request(&mut conn, "msg-1")
                .await
                .unwrap()
        );

        let node = Uuid::now_v7();
        let member = |address: &'static str, state: &'static str, call: Option<&'static str>| {
            crate::rooms::NewMember {
                phlo_id: phlo,
                node_id: node,
                node_type: "conference_bridge",
                room: "room-1",
                run_id: run,
                address,
                role: "participant",
                call_uuid: call,
                member_id: None,
                state,
                on_join: None,
            }
        };
        let a = crate::rooms::upsert(&mut conn, &member("+1", "joining", Some("call-a")))
            .await
            .unwrap();
        let again = crate::rooms::upsert(&mut conn, &member("+1", "in_call", None))
            .await
            .unwrap();
        assert_eq!(
            (again.id, again.state.as_str(), again.call_uuid.as_deref()),
            (a.id, "in_call", Some("call-a"))
        );
        let b = crate::rooms::upsert(&mut conn, &member("+2", "joining", Some("call-b")))
            .await
            .unwrap();
        assert_eq!(
            crate::rooms::find(&mut conn, phlo, node, "+1")
                .await
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
        assert_eq!(
            crate::rooms::by_call(&mut conn, "room-1", "call-b")
                .await
                .unwrap()
                .unwrap()
                .id,
            b.id
        );
        let present: Vec<i64> = crate::rooms::present(&mut conn, "room-1")
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(present, [a.id, b.id]);
        crate::rooms::set_state(&mut conn, a.id, "left", Some("x"))
            .await
            .unwrap();
        assert!(
            crate::rooms::find(&mut conn, phlo, node, "+1")
                .await
                .unwrap()
                .is_none()
        );
        let c3 = crate::rooms::upsert(&mut conn, &member("+1", "joining", None))
            .await
            .unwrap();
        assert_ne!(c3.id, a.id, "a new row once the old one left");
        assert_eq!(crate::rooms::of_run(&mut conn, run).await.unwrap().len(), 3);

        assert_eq!(
            crate::limits::get(&mut conn, account).await.unwrap(),
            Default::default()
        );
        let auth = account.to_string();
        let stored = crate::limits::get_by_auth_id(&mut conn, &auth)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.limits, stored.updated_at),
            (Default::default(), None)
        );
        assert!(
            crate::limits::get_by_auth_id(&mut conn, "nobody")
                .await
                .unwrap()
                .is_none()
        );
        let limits = crate::limits::AccountLimits {
            api_per_sec: Some(2.5),
            api_burst: Some(5),
            runs_per_sec: Some(0.0),
            runs_burst: None,
            max_active_runs: Some(3),
        };
        assert_eq!(
            crate::limits::set_by_auth_id(&mut conn, &auth, &limits)
                .await
                .unwrap(),
            Some(account)
        );
        assert_eq!(
            crate::limits::get(&mut conn, account).await.unwrap(),
            limits
        );
        let again = crate::limits::AccountLimits {
            api_per_sec: Some(3.0),
            ..Default::default()
        };
        crate::limits::set_by_auth_id(&mut conn, &auth, &again)
            .await
            .unwrap();
        let stored = crate::limits::get_by_auth_id(&mut conn, &auth)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.limits, again);
        assert!(stored.updated_at.is_some());
        assert_eq!(
            crate::limits::set_by_auth_id(&mut conn, "nobody", &again)
                .await
                .unwrap(),
            None
        );
        drop(conn);
        crate::ping(&pool).await.unwrap();
    })
    .await;
}

/// A statement that is several on SQLite (`db::lite_tx`) joins the caller's transaction as a
/// savepoint: rolled back with it, committed with it.
#[tokio::test]
async fn a_multi_statement_operation_joins_the_callers_transaction() {
    use crate::callbacks::{Claim, Finish, NewDelivery};
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        let run = new_run(&mut conn, account, phlo, "active", "").await;
        let id = Uuid::now_v7();
        let delivery = NewDelivery {
            id,
            run_id: run,
            node_id: Uuid::nil(),
            node_name: "Start",
            node_type: "start",
            event: "api_request",
            url: "https://example.com/",
            method: "POST",
            payload: "{}",
            traceparent: None,
        };
        assert_eq!(
            crate::callbacks::insert(&mut conn, &delivery)
                .await
                .unwrap(),
            None
        );
        drop(conn);
        let keys = crate::sealing::Keyring::new(&[1; 32]);
        let claimed = crate::callbacks::claim(&pool, &keys, id, 30.0, 1.0)
            .await
            .unwrap();
        assert!(matches!(claimed, Claim::Claimed(_)), "{claimed:?}");
        let done = Finish {
            outcome: "delivered",
            status: "delivered",
            status_code: Some(200),
            latency_ms: Some(1),
            error: None,
            response: Some("ok".into()),
            retry_in_secs: 0.0,
            queued: false,
        };
        let mut tx = pool.begin().await.unwrap();
        assert!(
            crate::callbacks::finish(&mut tx, id, 1, &done)
                .await
                .unwrap()
        );
        tx.rollback().await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        let d = crate::callbacks::get(&mut tx, account, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.status, "pending", "rolled back");
        assert!(
            crate::callbacks::finish(&mut tx, id, 1, &done)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let mut conn = c(&pool).await;
        let log = crate::callbacks::list_for_run(&mut conn, account, run)
            .await
            .unwrap();
        assert_eq!(log[0].0.status, "delivered");
        assert!(log[0].0.delivered_at.is_some());
        let outcomes: Vec<&str> = log[0].1.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["delivered"]);
        assert_eq!(
            crate::callbacks::count_by_status(&mut conn).await.unwrap(),
            [("delivered".to_owned(), 1)]
        );

        // The account listing's filters.
        use crate::callbacks::{AccountFilter, ChangePage, ChangePosition};
        let filter = |status: &str, page: ChangePage| AccountFilter {
            account_id: account,
            phlo_id: Some(phlo),
            run_id: Some(run),
            status: Some(status.into()),
            changed_since: Some(Utc::now() - Duration::hours(1)),
            page,
            limit: 10,
        };
        let start = ChangePage::After(ChangePosition {
            xid: 0,
            id: Uuid::nil(),
        });
        let newest = ChangePage::Newest { before: None };
        for (status, page, expected) in [
            ("delivered", start, vec![id]),
            ("delivered", newest, vec![id]),
            ("pending", start, vec![]),
        ] {
            // The Postgres horizon is cluster-wide: another test's transaction may hold it back.
            let mut listing = crate::callbacks::list_for_account(&mut conn, &filter(status, page))
                .await
                .unwrap();
            for _ in 0..200 {
                if listing.deliveries.len() >= expected.len() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                listing = crate::callbacks::list_for_account(&mut conn, &filter(status, page))
                    .await
                    .unwrap();
            }
            let ids: Vec<Uuid> = listing.deliveries.iter().map(|d| d.delivery.id).collect();
            assert_eq!(ids, expected, "{status} {page:?}");
            if let Some(d) = listing.deliveries.first() {
                assert!(d.position < listing.horizon);
                let before = ChangePage::Newest {
                    before: Some(d.position),
                };
                let below = crate::callbacks::list_for_account(&mut conn, &filter(status, before))
                    .await
                    .unwrap();
                assert!(below.deliveries.is_empty());
            }
        }
        let later = AccountFilter {
            changed_since: Some(Utc::now() + Duration::hours(1)),
            ..filter("delivered", start)
        };
        let listing = crate::callbacks::list_for_account(&mut conn, &later)
            .await
            .unwrap();
        assert!(listing.deliveries.is_empty());
    })
    .await;
}

/// The two schemas describe the same tables and columns: a Postgres migration without its SQLite
/// counterpart (migrations/sqlite/) fails here rather than in `phlo dev`.
#[tokio::test]
async fn the_sqlite_schema_has_every_table_and_column_of_the_postgres_one() {
    let postgres = crate::testing::fresh_pool().await.unwrap();
    let sqlite = crate::testing::fresh_sqlite().await.unwrap();
    let pg: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'
         ORDER BY 1, 2",
    )
    .fetch_all(postgres.postgres().unwrap())
    .await
    .unwrap();
    let mut conn = sqlite.acquire().await.unwrap();
    let lite: Vec<(String, String)> = crate::on!(&mut conn, |db, _dialect| sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'
           AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           -- SQLite's stand-in for Postgres transaction ids (callback listing cursor).
           AND m.name <> 'callback_change_counter'
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *db)
    .await)
    .unwrap();
    // Sorted here: the servers' collations may order `_` differently.
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let (pg, lite) = (sorted(pg), sorted(lite));
    assert!(pg.len() > 100, "{pg:?}");
    assert_eq!(
        lite, pg,
        "tables and columns: SQLite (left) vs Postgres (right)"
    );
}

/// Text from outside (a webhook's params, an HTTP response, an error a server sent back) is written with
/// U+FFFD for each NUL, on both backends: Postgres refuses NUL in `jsonb` and `text`, SQLite keeps it,
/// so a step with one failed for good on one backend and passed on the other.
#[tokio::test]
async fn nul_characters_are_written_as_replacement_characters() {
    on_both(|pool| async move {
        let mut conn = c(&pool).await;
        let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
        let run_id = new_run(&mut conn, account, phlo, "active", "trigger\u{0}text").await;
        let now = Utc::now();
        let step = crate::steps::Step {
            run_id,
            token: 1,
            seq: 1,
            node_id: Uuid::nil(),
            node_name: "HTTP_Request_1".into(),
            node_type: "http_request".into(),
            event: "enter".into(),
            outcome: "done".into(),
            state: Some("failed".into()),
            variables: Json(json!({ "response": { "body\u{0}": "a\u{0}b" } })),
            effects: Json(json!([])),
            error: Some("the server said: x\u{0}y".into()),
            started_at: now,
            finished_at: now,
        };
        crate::steps::insert(&mut conn, &[step]).await.unwrap();
        crate::runs::set_error(&mut conn, run_id, "failed: x\u{0}y")
            .await
            .unwrap();

        let run = crate::runs::find(&mut conn, run_id).await.unwrap().unwrap();
        assert_eq!(
            run.trigger.0,
            api_trigger(json!({ "text": "trigger\u{FFFD}text" }))
        );
        assert_eq!(run.error.as_deref(), Some("failed: x\u{FFFD}y"));
        let steps = crate::steps::list(&mut conn, run_id).await.unwrap();
        assert_eq!(
            steps[0].variables.0,
            json!({ "response": { "body\u{FFFD}": "a\u{FFFD}b" } })
        );
        assert_eq!(
            steps[0].error.as_deref(),
            Some("the server said: x\u{FFFD}y")
        );
    })
    .await;
}

/// Two messages of one run at once (Postgres: SQLite has one connection). The second waits for the
/// first's run lock, and must then read each token as the first left it: it read token 0 a step behind
/// (the join read it as of the statement's start), so its next step row collided with the first's.
#[tokio::test]
async fn a_step_that_waited_for_the_run_lock_reads_its_token_as_the_first_left_it() {
    let url = crate::testing::fresh_database().await.unwrap();
    let pool = crate::connect(&url, 4, 0).await.unwrap();
    let probe = sqlx::PgPool::connect(&url).await.unwrap();
    let mut conn = c(&pool).await;
    let (account, phlo) = crate::testing::account_and_phlo(&mut conn).await.unwrap();
    let run_id = new_run(&mut conn, account, phlo, "active", "x").await;
    let token = |n, seq| crate::tokens::Token {
        run_id,
        token: n,
        node_id: Uuid::nil(),
        status: "waiting".into(),
        seq,
        wait_id: Some(2),
        wait: None,
        context: Json(Context::default()),
        repeats: 0,
        ended_reason: None,
        updated_at: Utc::now(),
    };
    crate::tokens::save(&mut conn, &token(0, 3)).await.unwrap();
    drop(conn);

    let mut first = pool.begin().await.unwrap();
    let (_, seen) = crate::runs::lock_with_token(&mut first, run_id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.unwrap().seq, 3);
    let later = |n| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let (_, seen) = crate::runs::lock_with_token(&mut tx, run_id, n)
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
            seen.map(|t| t.seq)
        })
    };
    // Token 0 moves on a step; token 1 is new (a fork), so the waiting statement cannot see it.
    let (second, third) = (later(0), later(1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&probe)
        .await
        .unwrap();
        if waiting == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{waiting} waiting");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    crate::tokens::save(&mut first, &token(0, 4)).await.unwrap();
    crate::tokens::save(&mut first, &token(1, 1)).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Some(4));
    assert_eq!(third.await.unwrap(), Some(1));
}
