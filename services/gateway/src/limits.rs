//! Per-account rate limits: one budget for API requests, one for new runs, each a GCRA (the
//! token-bucket equivalent that keeps one instant per key: the "theoretical arrival time"). A request
//! over budget is answered 429 with `Retry-After` before it does any work.
//!
//! Budgets live in this process: with N gateway replicas an account may get up to N times its rate.
//! That is deliberate. Keeping them in Postgres would add a write per request on the account's one row,
//! which serialises exactly the account that floods; the lasting protection of other accounts is the
//! durable admission cap (`crate::routes::limits`, `phlo_runtime` admission), which is global. Operators
//! who need an exact global rate divide it by the replica count.
//!
//! Before either, a bound on the API requests one replica works on at once ([`shed`]).
//!
//! Carrier webhooks are never limited: they are not routed through [`limit_api`] at all (see
//! [`crate::app`]), since refusing one would drop a caller's live call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use phlo_service::env_parse;
use phlo_store::Pool;
use phlo_store::limits::AccountLimits;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// A sustained rate and the burst allowed after a quiet period. A rate of 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Rate {
    /// The time one request costs, or `None` when unlimited. A rate slower than one request per
    /// [`LONGEST_INTERVAL`] costs that: `1 / per_sec` of a tiny override (`5e-324`) is no `Duration`.
    fn interval(self) -> Option<Duration> {
        (self.per_sec > 0.0).then(|| {
            Duration::try_from_secs_f64(1.0 / self.per_sec)
                .map_or(LONGEST_INTERVAL, |d| d.min(LONGEST_INTERVAL))
        })
    }

    fn with(self, per_sec: Option<f64>, burst: Option<i32>) -> Rate {
        Rate {
            per_sec: per_sec.unwrap_or(self.per_sec),
            burst: burst
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(self.burst),
        }
    }
}

/// The longest a request can cost (about a century): long enough to mean "none", short enough that the
/// arithmetic of [`gcra`] stays within an `Instant` and a `Duration`.
const LONGEST_INTERVAL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The gateway's defaults; accounts may have their own (`PUT /v1/accounts/{auth_id}/limits`).
#[derive(Debug, Clone)]
pub struct RateConfig {
    /// `PHLO_RATE_API_PER_SEC`, `PHLO_RATE_API_BURST`: authenticated API requests of one account.
    pub api: Rate,
    /// `PHLO_RATE_RUNS_PER_SEC`, `PHLO_RATE_RUNS_BURST`: runs one account starts through the API.
    pub runs: Rate,
    /// `PHLO_RATE_LIMITS_REFRESH_SECS`: how long this replica uses an account's overrides before it
    /// reads them again (a change made through another replica takes effect within it).
    pub refresh: Duration,
}

impl RateConfig {
    pub fn from_env() -> Result<Self, String> {
        let rate = |rate_var: &str, default_rate: f64, burst_var: &str, default_burst: u32| {
            let per_sec: f64 = env_parse(rate_var, default_rate)?;
            if !per_sec.is_finite() || per_sec < 0.0 {
                return Err(format!(
                    "{rate_var}={per_sec} is invalid: use a rate ≥ 0 (0 means unlimited)"
                ));
            }
            let burst = env_parse(burst_var, default_burst)?;
            if burst == 0 {
                return Err(format!(
                    "{burst_var}=0 is invalid: the burst must be at least 1"
                ));
            }
            Ok(Rate { per_sec, burst })
        };
        Ok(Self {
            api: rate("PHLO_RATE_API_PER_SEC", 100.0, "PHLO_RATE_API_BURST", 200)?,
            runs: rate("PHLO_RATE_RUNS_PER_SEC", 20.0, "PHLO_RATE_RUNS_BURST", 100)?,
            refresh: phlo_service::env_secs("PHLO_RATE_LIMITS_REFRESH_SECS", 10)?,
        })
    }
}

/// What a budget is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Api,
    Runs,
}

/// Over budget: the request was refused and may be retried after `retry_after`.
#[derive(Debug)]
pub struct Limited {
    pub budget: Budget,
    pub rate: Rate,
    pub retry_after: Duration,
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        let secs = l.retry_after.as_secs() + u64::from(l.retry_after.subsec_nanos() > 0);
        let what = match l.budget {
            Budget::Api => "API requests",
            Budget::Runs => "new runs",
        };
        ApiError::too_many_requests(
            format!(
                "rate limit exceeded: this account may make {} {what} per second (bursts of {}); retry after {} s",
                l.rate.per_sec,
                l.rate.burst,
                secs.max(1)
            ),
            secs,
        )
    }
}

struct Account {
    api: Rate,
    runs: Rate,
    /// GCRA state: when the budget will be back to full. At or before now: full.
    api_tat: Instant,
    runs_tat: Instant,
    /// When the overrides were read.
    loaded: Instant,
    /// The overrides changed through this replica: read them again now.
    reload: bool,
}

#[derive(Default)]
struct Accounts {
    map: HashMap<Uuid, Account>,
    /// Past this many entries, idle ones are dropped (an idle entry equals a fresh one).
    prune_at: usize,
}

pub struct RateLimiter {
    config: RateConfig,
    accounts: Mutex<Accounts>,
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> Self {
        Self {
            config,
            accounts: Mutex::default(),
        }
    }

    /// Spends one request of the account's `budget`, or says how long until one is available.
    pub async fn acquire(
        &self,
        pool: &Pool,
        account_id: Uuid,
        budget: Budget,
    ) -> Result<(), Limited> {
        let now = Instant::now();
        if self.stale(account_id, now) {
            // Read outside the lock. A failed read keeps the defaults: the request goes on, and the
            // next one tries again.
            let overrides = match pool.acquire().await {
                Ok(mut conn) => phlo_store::limits::get(&mut conn, account_id).await.ok(),
                Err(_) => None,
            };
            self.install(account_id, overrides.as_ref(), now);
        }
        let mut accounts = self.lock();
        let Some(account) = accounts.map.get_mut(&account_id) else {
            return Ok(());
        };
        let (rate, tat) = match budget {
            Budget::Api => (account.api, &mut account.api_tat),
            Budget::Runs => (account.runs, &mut account.runs_tat),
        };
        gcra(rate, tat, now).map_err(|retry_after| Limited {
            budget,
            rate,
            retry_after,
        })
    }

    /// Drops what this replica knows of the account's overrides: its next request reads them again.
    pub fn forget_overrides(&self, account_id: Uuid) {
        if let Some(account) = self.lock().map.get_mut(&account_id) {
            account.reload = true;
        }
    }

    pub fn defaults(&self) -> &RateConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stale(&self, account_id: Uuid, now: Instant) -> bool {
        self.lock().map.get(&account_id).is_none_or(|a| {
            a.reload || now.saturating_duration_since(a.loaded) >= self.config.refresh
        })
    }

    fn install(&self, account_id: Uuid, overrides: Option<&AccountLimits>, now: Instant) {
        let o = overrides.cloned().unwrap_or_default();
        let api = self.config.api.with(o.api_per_sec, o.api_burst);
        let runs = self.config.runs.with(o.runs_per_sec, o.runs_burst);
        let mut accounts = self.lock();
        if accounts.map.len() >= accounts.prune_at {
            accounts
                .map
                .retain(|_, a| a.api_tat > now || a.runs_tat > now);
            accounts.prune_at = (accounts.map.len() * 2).max(1024);
        }
        let account = accounts.map.entry(account_id).or_insert(Account {
            api,
            runs,
            api_tat: now,
            runs_tat: now,
            loaded: now,
            reload: false,
        });
        account.api = api;
        account.runs = runs;
        account.loaded = now;
        account.reload = false;
    }
}

/// GCRA: each request moves the theoretical arrival time one interval on; a request that would move
/// it more than `burst` intervals ahead of now is refused, and told when it would not be.
fn gcra(rate: Rate, tat: &mut Instant, now: Instant) -> Result<(), Duration> {
    let Some(interval) = rate.interval() else {
        return Ok(());
    };
    let tolerance = interval.saturating_mul(rate.burst);
    let Some(next) = (*tat).max(now).checked_add(interval) else {
        return Err(interval);
    };
    let ahead = next - now;
    if ahead > tolerance {
        return Err(ahead - tolerance);
    }
    *tat = next;
    Ok(())
}

/// The API budget, for every authenticated request: authenticates the caller (an account, by HTTP
/// Basic), spends one request of its budget, and leaves the caller in the request for the handler's
/// [`Caller`] extractor. Requests without account credentials, or with wrong ones, pass on untouched:
/// the handler answers them (401, or the operator's and public routes), and they cost no account's
/// budget, so nobody can spend another account's budget by naming its auth id.
pub async fn limit_api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(_in_flight) = shed(&state) else {
        let max = state.config.max_in_flight;
        return ApiError::busy(
            format!(
                "this gateway is working on {max} API requests, its limit (PHLO_GATEWAY_MAX_IN_FLIGHT); retry after 1 s"
            ),
            1,
        )
        .into_response();
    };
    let basic = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| h.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
    if !basic {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    if let Ok(caller) = Caller::from_request_parts(&mut parts, &state).await {
        if let Err(limited) = state
            .limits
            .acquire(&state.pool, caller.account_id, Budget::Api)
            .await
        {
            return ApiError::from(limited).into_response();
        }
        parts.extensions.insert(caller);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A permit for one more API request, or `None` when the replica already works on its maximum. Without
/// a bound, a flood (or a slow database) piles up requests that each hold memory and wait for a pool
/// connection until the process runs out of memory; a 503 now lets the client, or its load balancer,
/// try another replica. Metric: `phlo_http_shed_total`.
fn shed(state: &AppState) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let permit = state.in_flight.clone().try_acquire_owned().ok();
    if permit.is_none() {
        metrics::counter!("phlo_http_shed_total").increment(1);
    }
    permit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let rate = Rate {
            per_sec: 10.0,
            burst: 3,
        };
        let start = Instant::now();
        let mut tat = start;
        for _ in 0..3 {
            assert_eq!(gcra(rate, &mut tat, start), Ok(()));
        }
        let wait = gcra(rate, &mut tat, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Refusals cost nothing: after the wait exactly one more request fits.
        let later = start + wait;
        assert_eq!(gcra(rate, &mut tat, later), Ok(()));
        assert!(gcra(rate, &mut tat, later).is_err());
        // After a quiet period the whole burst is back, and no more.
        let quiet = later + Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(gcra(rate, &mut tat, quiet), Ok(()));
        }
        assert!(gcra(rate, &mut tat, quiet).is_err());
    }

    /// Found by `scripts/api-fuzz`: an override of `api_per_sec: 5e-324` (valid: at least 0) made every
    /// request of the account panic (a 500), converting `1 / 5e-324` seconds into a `Duration`.
    #[test]
    fn a_rate_too_slow_to_represent_admits_the_burst_then_waits_a_century() {
        for per_sec in [5e-324, 1e-300, 1e-12] {
            let rate = Rate {
                per_sec,
                burst: u32::MAX,
            };
            let now = Instant::now();
            let mut tat = now;
            assert_eq!(gcra(rate, &mut tat, now), Ok(()), "{per_sec}");
            let rate = Rate { per_sec, burst: 1 };
            let mut tat = now;
            assert_eq!(gcra(rate, &mut tat, now), Ok(()));
            assert_eq!(
                gcra(rate, &mut tat, now),
                Err(LONGEST_INTERVAL),
                "{per_sec}"
            );
        }
    }

    #[test]
    fn a_zero_rate_is_unlimited() {
        let rate = Rate {
            per_sec: 0.0,
            burst: 1,
        };
        let now = Instant::now();
        let mut tat = now;
        for _ in 0..10_000 {
            assert_eq!(gcra(rate, &mut tat, now), Ok(()));
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let limited = |ms| Limited {
            budget: Budget::Runs,
            rate: Rate {
                per_sec: 1.0,
                burst: 1,
            },
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(ApiError::from(limited(1)).retry_after, Some(1));
        assert_eq!(ApiError::from(limited(1000)).retry_after, Some(1));
        assert_eq!(ApiError::from(limited(1001)).retry_after, Some(2));
        assert_eq!(ApiError::from(limited(0)).retry_after, Some(1));
    }
}
