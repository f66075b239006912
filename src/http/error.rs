//! JSON errors and the strict extractors that produce them.
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with the
//! status of SPEC §2: 400 input that does not parse (bad JSON, wrong types,
//! unknown fields, bad query parameters), 401 no or invalid token, 403 role
//! too low, 404, 409 conflict, 413 body too large, 422 a well-formed value
//! that is not acceptable, 429 over a limit of what the daemon holds
//! (open alerts), 503 shutting down or over a cap (then with
//! `Retry-After`, and the connection is closed).

use crate::auth::{AuthError, Caller, Role, authorize};
use crate::http::AppState;
use crate::store::StoreError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After`; such a response also closes the
    /// connection, whose slot is what the client should give back.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 503 for a cap that is reached; retry in `retry_after` seconds.
    pub fn overloaded(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid_value(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            let h = response.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TableNotFound(_) | StoreError::NotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::Limit(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many", e.to_string())
            }
            StoreError::Conflict(_) | StoreError::Refused(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::InvalidValue { .. } => ApiError::invalid_value(e.to_string()),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the daemon is shutting down; retry shortly",
            ),
            StoreError::Invalid(_)
            | StoreError::NewerSchema { .. }
            | StoreError::Sqlite(_)
            | StoreError::Io(_) => {
                tracing::error!(error = ?e.to_string(), "storage error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "storage error (see the daemon's log)",
                )
            }
        }
    }
}

/// A JSON body parsed strictly: any syntax or type error, or an unknown
/// field, is a 400 naming the offending path; an oversized body is a 413.
/// No Content-Type is demanded (`curl -d` sends a form type).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body is too large",
                )
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(value) => Ok(JsonBody(value)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // serde_json reports some type errors (a number where an
                // enum goes) as syntax errors: only text that is not JSON
                // at all is `bad_json`.
                let not_json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err();
                let code = if not_json { "bad_json" } else { "bad_request" };
                let message = if path == "." || path == "?" {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                Err(ApiError::new(StatusCode::BAD_REQUEST, code, message))
            }
        }
    }
}

/// The request's query string as name/value pairs, checked against the
/// names the route accepts (a misspelt filter must not silently match all).
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
        for (name, _) in &pairs {
            if name != "token" && !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?} (accepted: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Query(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// An unsigned integer parameter, with a 400 naming it when malformed.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("{name}: {v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }
}

/// The token of a request: `Authorization: Bearer` or `?token=`.
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(token.trim().to_string());
    }
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .ok()?
        .into_iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value)
}

/// Extractor: the caller, who must have at least role `ROLE`
/// (0 viewer, 1 staff, 2 admin — see the aliases below).
pub struct Need<const ROLE: u8>(pub Caller);

pub type AsViewer = Need<0>;
pub type AsStaff = Need<1>;
pub type AsAdmin = Need<2>;

impl<const ROLE: u8> FromRequestParts<AppState> for Need<ROLE> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let needed = match ROLE {
            0 => Role::Viewer,
            1 => Role::Staff,
            _ => Role::Admin,
        };
        let token = presented_token(&parts.headers, parts.uri.query());
        let paired = app.paired.tokens();
        match authorize(&app.config.auth, &paired, token.as_deref(), needed) {
            Ok(caller) => {
                // A revoked tablet's connections are closed (`pairing`).
                if let Some(id) = caller.paired {
                    let kill = parts.extensions.get::<crate::http::ConnKill>();
                    let conn = parts.extensions.get::<crate::http::ConnId>();
                    if let (Some(kill), Some(conn)) = (kill, conn) {
                        app.paired.track(id, conn.0, &kill.0);
                    }
                }
                Ok(Need(caller))
            }
            Err(AuthError::Unauthenticated) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                if token.is_some() {
                    "invalid token"
                } else {
                    "a token is required (Authorization: Bearer <token> or ?token=)"
                },
            )),
            Err(AuthError::Forbidden) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {} role", needed.as_str()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTP and MQTT follow one rule (`StoreError::is_client_fault`): a
    /// 4xx here is what MQTT acknowledges, a 5xx what it leaves unacked.
    #[test]
    fn store_errors_map_to_4xx_exactly_when_they_are_the_client_s_fault() {
        let errors = [
            StoreError::TableNotFound(1),
            StoreError::Conflict("c".into()),
            StoreError::InvalidValue {
                field: "f".into(),
                message: "m".into(),
            },
            StoreError::Refused("r".into()),
            StoreError::NotFound("n".into()),
            StoreError::Limit("l".into()),
            StoreError::Invalid("database is locked".into()),
            StoreError::NewerSchema {
                found: 3,
                supported: 2,
            },
            StoreError::Closed,
            StoreError::Sqlite(rusqlite::Error::InvalidQuery),
            StoreError::Io(std::io::Error::other("disk full")),
        ];
        for e in errors {
            let client = e.is_client_fault();
            let status = ApiError::from(e).status;
            assert_eq!(status.is_client_error(), client, "{status}");
            assert_eq!(status.is_server_error(), !client, "{status}");
        }
    }
}
