//! Group commit against a real Postgres and a webhook receiver on a local port: attempts in flight at
//! once share their claim and result statements, and each still ends as it would alone: sent once,
//! logged once, acked only once recorded, never lost when a write fails.
//!
//! The tests run on Tokio's single-threaded runtime: attempts started together (`join_all`) queue
//! their claims (or results) before the batching task runs, so they meet in one statement.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use futures::future::join_all;
use phlo_bus::Outcome;
use phlo_callback::batch::Batcher;
use phlo_callback::deliver::{DUE_SLACK_SECS, Deliverer, Settings};
use phlo_callback::schedule::Schedule;
use phlo_egress::{Egress, EgressConfig};
use phlo_store::Pool;
use phlo_store::callbacks::{self, Claim, Finish, NewDelivery};
use phlo_store::sealing::Keyring;
use sqlx::PgPool;
use uuid::Uuid;

/// A webhook receiver answering 200; it keeps the `webhook-id` of every request.
struct Receiver {
    addr: SocketAddr,
    ids: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let ids: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = ids.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push(id);
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, ids }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests per `webhook-id` (the delivery id).
    fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.ids.lock().unwrap().iter() {
            *counts.entry(id.clone()).or_default() += 1;
        }
        counts
    }
}

/// A fresh database with an account that has a signing secret, a PHLO and a run.
struct Fixture {
    pool: Pool,
    pg: PgPool,
    keys: Keyring,
    run: Uuid,
}

impl Fixture {
    async fn new() -> Fixture {
        let pool = phlo_store::testing::fresh_pool().await.unwrap();
        let pg = pool.postgres().unwrap().clone();
        let keys = Keyring::new(&[5; 32]);
        let mut conn = pool.acquire().await.unwrap();
        let (account, phlo) = phlo_store::testing::account_and_phlo(&mut conn)
            .await
            .unwrap();
        callbacks::ensure_secret(&mut conn, &keys, account, "whsec_batch")
            .await
            .unwrap();
        let run = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO runs (id, account_id, phlo_id, revision, status, trigger_type, trigger)
             VALUES ($1, $2, $3, 1, 'active', 'api', '{}')",
        )
        .bind(run)
        .bind(account)
        .bind(phlo)
        .execute(&pg)
        .await
        .unwrap();
        Fixture {
            pool,
            pg,
            keys,
            run,
        }
    }

    async fn deliveries(&self, n: usize, url: &str) -> Vec<Uuid> {
        let mut conn = self.pool.acquire().await.unwrap();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = Uuid::now_v7();
            let skipped = callbacks::insert(
                &mut conn,
                &NewDelivery {
                    id,
                    run_id: self.run,
                    node_id: Uuid::nil(),
                    node_name: "Start",
                    node_type: "start",
                    event: "api_request",
                    url,
                    method: "POST",
                    payload: r#"{"type":"phlo.node.api_request"}"#,
                    traceparent: None,
                },
            )
            .await
            .unwrap();
            assert_eq!(skipped, None);
            ids.push(id);
        }
        ids
    }

    fn settings() -> Settings {
        Settings {
            schedule: Schedule::default(),
            jitter: 0.0,
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024,
            nak_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(86_400),
        }
    }

    fn batcher(&self) -> Batcher {
        Batcher::start(
            self.pool.clone(),
            self.keys.clone(),
            Self::settings().lease().as_secs_f64(),
            DUE_SLACK_SECS,
        )
    }

    fn deliverer(&self) -> Deliverer {
        Deliverer {
            pool: self.pool.clone(),
            batcher: self.batcher(),
            egress: Egress::new(EgressConfig {
                allow: EgressConfig::parse_allow("127.0.0.1/32").unwrap(),
                ..EgressConfig::default()
            })
            .unwrap(),
            secret_keys: self.keys.clone(),
            settings: Arc::new(Self::settings()),
        }
    }

    /// (status, attempts, leased, delivered) of a delivery.
    async fn state(&self, id: Uuid) -> (String, i32, bool, bool) {
        sqlx::query_as(
            "SELECT status, attempts, lease_until IS NOT NULL, delivered_at IS NOT NULL
             FROM callback_deliveries WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pg)
        .await
        .unwrap()
    }

    /// The logged attempts of a delivery: (attempt, outcome).
    async fn attempts(&self, id: Uuid) -> Vec<(i32, String)> {
        sqlx::query_as(
            "SELECT attempt, outcome FROM callback_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pg)
        .await
        .unwrap()
    }
}

fn delivered(code: i32) -> Finish {
    Finish {
        outcome: "delivered",
        status: "delivered",
        status_code: Some(code),
        latency_ms: Some(1),
        error: None,
        response: None,
        retry_in_secs: 0.0,
        queued: false,
    }
}

#[tokio::test]
async fn many_attempts_at_once_are_each_sent_once_and_logged_once() {
    let f = Fixture::new().await;
    let receiver = Receiver::start().await;
    let ids = f.deliveries(300, &receiver.url("/hook")).await;
    let deliverer = f.deliverer();
    // Every message, and a duplicate of the first 20 (NATS may deliver one twice) at the same time.
    let messages: Vec<Uuid> = ids.iter().chain(&ids[..20]).copied().collect();
    let outcomes = join_all(messages.iter().map(|id| deliverer.handle(*id))).await;

    let mut retried = 0;
    for outcome in &outcomes {
        match outcome.as_ref().expect("no database trouble") {
            Outcome::Ack => {}
            // A duplicate that met its twin's lease: looked at again once the lease ends.
            Outcome::Retry(after) if *after > Duration::from_secs(5) => retried += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(retried <= 20, "only duplicates wait: {retried}");
    let counts = receiver.counts();
    assert_eq!(counts.len(), 300);
    for id in &ids {
        assert_eq!(counts.get(&id.to_string()), Some(&1), "{id} sent once");
        assert_eq!(
            f.state(*id).await,
            ("delivered".to_owned(), 1, false, true),
            "{id}"
        );
        assert_eq!(f.attempts(*id).await, [(1, "delivered".to_owned())], "{id}");
    }
    let (claims, results) = deliverer.batcher.largest_batches();
    assert!(
        claims > 1 && results > 1,
        "claims and results were batched: {claims}, {results}"
    );
}

#[tokio::test]
async fn a_batch_of_claimable_and_unclaimable_deliveries_answers_each() {
    let f = Fixture::new().await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    let gone_url = receiver.url("/gone");
    let [claimable, finished, leased, due_soon, due_later] = f.deliveries(5, &url).await[..] else {
        unreachable!()
    };
    let [disabled, disabler] = f.deliveries(2, &gone_url).await[..] else {
        unreachable!()
    };
    let missing = Uuid::now_v7();
    // The states, through the store directly.
    let batcher = f.batcher();
    let retry = |secs: f64, queued: bool| Finish {
        outcome: "retry",
        status: "pending",
        status_code: Some(503),
        error: Some("HTTP 503".into()),
        retry_in_secs: secs,
        queued,
        ..delivered(503)
    };
    let gone = Finish {
        outcome: "disabled",
        status: "failed",
        ..delivered(410)
    };
    for id in [finished, leased, due_soon, due_later, disabler] {
        assert!(matches!(
            batcher.claim(id).await.unwrap(),
            Some(Claim::Claimed(_))
        ));
    }
    for (id, result) in [
        (finished, delivered(200)),
        (due_soon, retry(3.0, true)),
        (due_later, retry(100.0, false)),
        (disabler, gone),
    ] {
        assert!(batcher.finish(id, 1, result).await.unwrap());
    }

    let deliverer = f.deliverer();
    let messages = [
        claimable, missing, finished, leased, due_soon, due_later, disabled,
    ];
    let outcomes: Vec<Outcome> = join_all(messages.iter().map(|id| deliverer.handle(*id)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let by_id: HashMap<Uuid, &Outcome> = messages.iter().copied().zip(&outcomes).collect();
    assert_eq!(
        deliverer.batcher.largest_batches().0,
        messages.len(),
        "one claim statement for all"
    );
    assert!(matches!(by_id[&claimable], Outcome::Ack));
    assert!(matches!(by_id[&missing], Outcome::Ack));
    assert!(matches!(by_id[&finished], Outcome::Ack));
    assert!(
        matches!(by_id[&leased], Outcome::Retry(d) if *d > Duration::from_secs(5)),
        "{:?}",
        by_id[&leased]
    );
    assert!(
        matches!(by_id[&due_soon], Outcome::Retry(d) if *d <= Duration::from_secs(5)),
        "{:?}",
        by_id[&due_soon]
    );
    assert!(matches!(by_id[&due_later], Outcome::Ack));
    assert!(matches!(by_id[&disabled], Outcome::Ack));

    // Only the claimable one was sent; the rest kept their states.
    assert_eq!(
        receiver.counts(),
        HashMap::from([(claimable.to_string(), 1)])
    );
    assert_eq!(
        f.state(claimable).await,
        ("delivered".to_owned(), 1, false, true)
    );
    assert_eq!(
        f.state(finished).await,
        ("delivered".to_owned(), 1, false, true)
    );
    assert_eq!(
        f.state(leased).await,
        ("pending".to_owned(), 1, true, false)
    );
    assert_eq!(
        f.state(due_soon).await,
        ("pending".to_owned(), 1, false, false)
    );
    assert_eq!(
        f.state(due_later).await,
        ("pending".to_owned(), 1, false, false)
    );
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM callback_deliveries WHERE id = $1")
            .bind(disabled)
            .fetch_one(&f.pg)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(
        error.starts_with(&format!(
            "not attempted: this URL answered 410 Gone to delivery {disabler}"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_result_write_failing_for_a_moment_is_retried_and_each_is_sent_once() {
    let f = Fixture::new().await;
    let receiver = Receiver::start().await;
    let ids = f.deliveries(50, &receiver.url("/hook")).await;
    // The first two result statements fail as a serialization failure would (the sequence, unlike a
    // table, is not rolled back with them).
    sqlx::raw_sql(
        "CREATE SEQUENCE result_writes;
         CREATE FUNCTION fail_twice() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('result_writes') <= 2 THEN
                 RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_twice BEFORE INSERT ON callback_attempts
             FOR EACH ROW EXECUTE FUNCTION fail_twice();",
    )
    .execute(&f.pg)
    .await
    .unwrap();
    let deliverer = f.deliverer();
    let outcomes = join_all(ids.iter().map(|id| deliverer.handle(*id))).await;
    for outcome in outcomes {
        assert!(matches!(outcome, Ok(Outcome::Ack)), "{outcome:?}");
    }
    let (writes,): (i64,) = sqlx::query_as("SELECT last_value FROM result_writes")
        .fetch_one(&f.pg)
        .await
        .unwrap();
    assert!(writes > 2, "the failures happened: {writes}");
    let counts = receiver.counts();
    for id in &ids {
        assert_eq!(
            counts.get(&id.to_string()),
            Some(&1),
            "{id} sent once, not again"
        );
        assert_eq!(f.state(*id).await, ("delivered".to_owned(), 1, false, true));
        assert_eq!(f.attempts(*id).await, [(1, "delivered".to_owned())]);
    }
}

#[tokio::test]
async fn a_result_the_database_refuses_fails_alone_and_leaves_its_delivery_to_be_sent_again() {
    let f = Fixture::new().await;
    let ids = f.deliveries(5, "http://127.0.0.1:9/never").await;
    let poisoned = ids[2];
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.delivery_id = '{poisoned}' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON callback_attempts
             FOR EACH ROW EXECUTE FUNCTION refuse();"
    )))
    .execute(&f.pg)
    .await
    .unwrap();
    let batcher = f.batcher();
    let claims = join_all(ids.iter().map(|id| batcher.claim(*id))).await;
    for claim in claims {
        assert!(matches!(claim, Ok(Some(Claim::Claimed(_)))));
    }
    let results = join_all(ids.iter().map(|id| batcher.finish(*id, 1, delivered(200)))).await;
    assert_eq!(batcher.largest_batches(), (5, 5), "one batch each");
    for (id, result) in ids.iter().zip(&results) {
        if *id == poisoned {
            let error = result.as_ref().unwrap_err();
            assert!(!error.is_transient(), "{error}");
            // Not recorded and still leased: when the lease lapses the scheduler sends it again
            // (same webhook-id); its message is retried meanwhile.
            assert_eq!(f.state(*id).await, ("pending".to_owned(), 1, true, false));
            assert!(f.attempts(*id).await.is_empty());
        } else {
            assert!(matches!(result, Ok(true)), "{id}: {result:?}");
            assert_eq!(f.state(*id).await, ("delivered".to_owned(), 1, false, true));
            assert_eq!(f.attempts(*id).await, [(1, "delivered".to_owned())]);
        }
    }
}
