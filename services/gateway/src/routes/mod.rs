//! Routes, one module per resource.

mod accounts;
mod callbacks;
pub mod carrier;
mod counters;
mod limits;
mod numbers;
mod openapi;
mod phlos;
mod plivo;
pub mod rooms;
mod runs;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::error::{no_route, wrong_method};

/// Every route. The account rate limit wraps all but the carrier webhooks, which must never be refused.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", post(accounts::create))
        .route(
            "/v1/accounts/{auth_id}/limits",
            get(limits::get).put(limits::set),
        )
        .route("/v1/phlo", get(phlos::list).post(phlos::create))
        .route("/v1/phlo/validate", post(phlos::validate))
        .route("/v1/phlo/{phlo_id}", get(phlos::get).put(phlos::update))
        .route("/v1/phlo/{phlo_id}/revisions", get(phlos::revisions))
        .route(
            "/v1/phlo/{phlo_id}/revisions/{revision}",
            get(phlos::revision),
        )
        .route("/v1/phlo/{phlo_id}/rollback", post(phlos::rollback))
        .route(
            "/v1/phlo/{phlo_id}/counters",
            get(counters::list).delete(counters::reset_all),
        )
        .route(
            "/v1/phlo/{phlo_id}/counters/{node_id}",
            delete(counters::reset),
        )
        .route("/v1/phlo/{phlo_id}/runs/{run_id}", get(runs::get_for_phlo))
        .route(
            "/v1/phlo/{phlo_id}/{node_type}/{node_id}",
            get(plivo::node).post(rooms::node_action),
        )
        .route(
            "/v1/phlo/{phlo_id}/{node_type}/{node_id}/members/{member_address}",
            post(rooms::member_action),
        )
        .route("/v1/account/{auth_id}/phlo/{phlo_id}", post(plivo::run))
        .route("/v1/numbers", get(numbers::list))
        .route(
            "/v1/numbers/{number}",
            put(numbers::attach).delete(numbers::detach),
        )
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{run_id}", get(runs::get))
        .route("/v1/runs/{run_id}/cancel", post(runs::cancel))
        .route("/v1/runs/{run_id}/callbacks", get(callbacks::list_for_run))
        .route("/v1/callbacks", get(callbacks::list))
        .route(
            "/v1/callbacks/{delivery_id}/redeliver",
            post(callbacks::redeliver),
        )
        .route("/v1/account/webhook-secret", get(callbacks::secret))
        .route(
            "/v1/account/webhook-secret/rotate",
            post(callbacks::rotate_secret),
        )
        .route("/v1/openapi.json", get(openapi::document))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::limit_api,
        ))
        .merge(carrier::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}
