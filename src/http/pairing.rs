//! Tablet pairing routes (`crate::pairing`):
//!
//! - `POST /api/v1/pairings` (admin) `{"name", "role", "expires_in_minutes"?}`
//!   → 201 `{"code", "url", "expires_at", "qr", "pairing"}`; `url` is
//!   `https://<host>:<tls port>/pair?code=CODE` (plain HTTP only while TLS
//!   is off), `qr` the URL of its QR code.
//! - `GET /api/v1/pairings` (admin): pending, expired and paired tablets.
//! - `DELETE /api/v1/pairings/{id}` (admin): revokes a tablet (or an
//!   unused code); its token is refused, and its open connections closed,
//!   before the answer.
//! - `GET /api/v1/pairings/qr.svg?code=CODE` (admin): the QR code of the
//!   pairing URL.
//! - `POST /api/v1/pair` (public) `{"code"}` → `{"token", "role", "name"}`,
//!   once per code; at most `auth.pairing_attempts_per_minute` calls a
//!   minute from everyone (429 with `Retry-After` beyond). Every refusal
//!   is counted (`mesero_pairing_refused_total`) and logged rate-limited.

use super::AppState;
use super::error::{ApiError, AsAdmin, JsonBody, Need, Query};
use crate::auth::Role;
use crate::domain::{EventData, Pairing};
use crate::pairing::{digest, new_code, new_token, normalize_code};
use crate::store::{Applied, Change, PairingChange};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPairing {
    name: String,
    role: String,
    expires_in_minutes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    code: String,
}

fn pairing_of(applied: &Applied) -> Option<&Pairing> {
    match applied.event.as_ref().map(|e| &e.data) {
        Some(
            EventData::PairingCreated { pairing }
            | EventData::PairingCompleted { pairing }
            | EventData::PairingRevoked { pairing },
        ) => Some(pairing),
        _ => None,
    }
}

fn missing_event() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the pairing change recorded no event",
    )
}

fn pair_url(app: &AppState, headers: &HeaderMap, code: &str) -> String {
    format!("{}/pair?code={code}", super::tls::origin(app, headers))
}

/// `POST /api/v1/pairings`.
pub async fn create(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewPairing>,
) -> Result<Response, ApiError> {
    let role: Role = body
        .role
        .parse()
        .map_err(|e: String| ApiError::invalid_value(format!("role: {e}")))?;
    let limits = app.config.auth.pairing;
    let max_minutes = limits.lifetime.as_secs() / 60;
    let lifetime = match body.expires_in_minutes {
        None => limits.lifetime,
        Some(m) if (1..=max_minutes).contains(&m) => Duration::from_secs(m * 60),
        Some(m) => {
            return Err(ApiError::invalid_value(format!(
                "expires_in_minutes: {m} is not from 1 to {max_minutes} (auth.pairing_lifetime)"
            )));
        }
    };
    let code = new_code()?;
    let expires_at = app.store.wall().now() + lifetime;
    let applied = app
        .store
        .apply(
            Change::Pairing(PairingChange::Create {
                name: body.name,
                role,
                code_sha256: digest(&code),
                expires_at,
                max: limits.max_paired,
            }),
            caller.actor(),
        )
        .await?;
    app.paired.refresh(&app.store).await?;
    let pairing = pairing_of(&applied).ok_or_else(missing_event)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "code": code,
            "url": pair_url(&app, &headers, &code),
            "expires_at": pairing.expires_at,
            "qr": format!("/api/v1/pairings/qr.svg?code={code}"),
            "pairing": pairing,
        })),
    )
        .into_response())
}

/// `GET /api/v1/pairings`.
pub async fn list(State(app): State<AppState>, _: AsAdmin) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "pairings": app.store.pairings().await? })))
}

/// `DELETE /api/v1/pairings/{id}`.
pub async fn revoke(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a pairing id")))?;
    let applied = app
        .store
        .apply(
            Change::Pairing(PairingChange::Revoke { id }),
            caller.actor(),
        )
        .await?;
    app.paired.refresh(&app.store).await?;
    let pairing = pairing_of(&applied).ok_or_else(missing_event)?;
    Ok(Json(json!({ "pairing": pairing })))
}

/// `GET /api/v1/pairings/qr.svg?code=`.
pub async fn qr(
    State(app): State<AppState>,
    _: AsAdmin,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query(), &["code"])?;
    let code = query
        .get("code")
        .and_then(normalize_code)
        .ok_or_else(|| ApiError::bad_request("code: a pairing code is required"))?;
    super::tls::qr_svg(&pair_url(&app, &headers, &code))
}

fn refused(app: &AppState, why: &'static str) {
    app.metrics
        .http
        .pairing_refused
        .fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = app.paired.refusals.allow(why, Instant::now()) {
        tracing::warn!(why, suppressed, "tablet pairing refused");
    }
}

/// `POST /api/v1/pair`.
pub async fn exchange(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<Exchange>,
) -> Result<Response, ApiError> {
    let per_minute = app.config.auth.pairing.attempts_per_minute;
    if let Err(wait) = app.paired.admit(per_minute, Instant::now()) {
        refused(&app, "rate limit");
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many",
            "too many pairing attempts; retry in a minute",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(response);
    }
    let Some(code) = normalize_code(&body.code) else {
        refused(&app, "malformed code");
        return Err(ApiError::invalid_value(format!(
            "code: not a pairing code ({} letters and digits)",
            crate::pairing::CODE_LEN
        )));
    };
    let token = new_token()?;
    let applied = app
        .store
        .apply(
            Change::Pairing(PairingChange::Complete {
                code_sha256: digest(&code),
                token_sha256: digest(&token),
            }),
            crate::domain::Actor::System,
        )
        .await
        .inspect_err(|e| {
            if e.is_client_fault() {
                refused(&app, "unknown, used or expired code");
            }
        })?;
    app.paired.refresh(&app.store).await?;
    let pairing = pairing_of(&applied).ok_or_else(missing_event)?;
    Ok(Json(json!({
        "token": token,
        "role": pairing.role,
        "name": pairing.name,
    }))
    .into_response())
}
