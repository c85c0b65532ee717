//! Carrier webhooks: the runner is the carrier's application server (Plivo's model). Voice webhooks
//! turn into events for the waiting token, then answer with the XML the call runs next, waiting for it
//! within the carrier's patience and keeping the call alive (Wait + Redirect) when a step is slower.
//!
//! No account authentication here: the carrier signs its requests (`X-Plivo-Signature-V3`), checked
//! when `PHLO_CARRIER_AUTH_TOKEN` is set.

pub mod events;
mod sms;
mod voice;
mod wait;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::AppState;
use crate::error::ApiError;
use events::Params;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/carrier/voice/answer", post(voice::answer))
        .route("/v1/carrier/voice/hangup", post(voice::hangup))
        .route(
            "/v1/carrier/voice/continue/{call_uuid}",
            post(voice::resume_waiting),
        )
        .route(
            "/v1/carrier/voice/{run_id}/{token}/{wait_id}/call/legs/{leg}/answer",
            post(voice::leg_answer),
        )
        .route(
            "/v1/carrier/voice/{run_id}/{token}/{wait_id}/call/legs/{leg}/hangup",
            post(voice::leg_hangup),
        )
        .route(
            "/v1/carrier/voice/{run_id}/{token}/{wait_id}/{kind}",
            post(voice::action),
        )
        .route(
            "/v1/carrier/rooms/{run_id}/{node_id}/events",
            post(super::rooms::carrier_events),
        )
        .route("/v1/carrier/sms/inbound", post(sms::inbound))
        .route(
            "/v1/carrier/sms/{run_id}/{token}/{wait_id}/{recipient}/status",
            post(sms::status),
        )
}

/// A carrier webhook's parameters (form body, or query for GET), after the signature check.
pub struct Webhook {
    pub params: Params,
    pub query: Params,
}

impl FromRequest<AppState> for Webhook {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let uri: Uri = req.uri().clone();
        let headers: HeaderMap = req.headers().clone();
        let is_post = req.method() == axum::http::Method::POST;
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if let Some(token) = state.config.carrier_auth_token.as_ref().map(|t| t.expose()) {
            let url = format!(
                "{}{}",
                state.config.public_url.trim_end_matches('/'),
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let signature = header(phlo_carrier::signature::SIGNATURE_V3_HEADER);
            let nonce = header(phlo_carrier::signature::NONCE_V3_HEADER);
            let signed = if is_post { pairs.clone() } else { Vec::new() };
            if !phlo_carrier::signature::verify_signature_v3(
                token, &url, &nonce, &signature, &signed, is_post,
            ) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the X-Plivo-Signature-V3 of this webhook does not verify",
                ));
            }
        }
        let mut params: Params = query.iter().cloned().map(scrub_nul).collect();
        params.extend(pairs.into_iter().map(scrub_nul));
        Ok(Webhook {
            params,
            query: query.into_iter().map(scrub_nul).collect(),
        })
    }
}

/// Postgres text cannot hold a NUL, and a carrier cannot be asked to leave it out (an SMS decoded
/// from GSM 7-bit turns '@' into 0x00): U+FFFD takes its place, as in stored JSON. After the signature
/// check, which covers what was sent.
fn scrub_nul((name, value): (String, String)) -> (String, String) {
    let scrub = |s: String| {
        if s.contains('\0') {
            phlo_store::stored::text(&s).into_owned()
        } else {
            s
        }
    };
    (scrub(name), scrub(value))
}

/// An XML answer for the carrier.
pub fn xml(body: String) -> Response {
    ([(CONTENT_TYPE, "application/xml")], body).into_response()
}
