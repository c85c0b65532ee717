//! `POST /v1/accounts`: the operator creates an account; its token is shown once and stored hashed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Admin, hash_token, new_auth_id, new_auth_token};
use crate::error::ApiError;
use crate::extract::{JsonBody, plivo_time};

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.object("the account")?;
    let name = match body.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= 200 => s.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`name` must be a string of at most 200 characters",
            ));
        }
    };
    if let Some(key) = body.keys().find(|k| *k != "name") {
        return Err(ApiError::bad_request(format!(
            "`{key}` is not a field of an account; the only field is `name`"
        )));
    }
    let token = new_auth_token();
    let mut tx = state.pool.begin().await?;
    let account = phlo_store::accounts::create(
        &mut tx,
        Uuid::now_v7(),
        &new_auth_id(),
        &hash_token(&token),
        &name,
    )
    .await?;
    // The secret callbacks are signed with (`GET /v1/account/webhook-secret` shows it).
    let secret = phlo_runtime::callbacks::new_secret();
    phlo_store::callbacks::ensure_secret(&mut tx, &state.config.secret_keys, account.id, &secret)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "api_id": Uuid::now_v7(),
            "auth_id": account.auth_id,
            "auth_token": token,
            "name": account.name,
            "created_on": plivo_time(account.created_at),
            "message": "store the auth_token now: it is not shown again",
        })),
    ))
}
