//! What the HTTPS listener adds to the router (`crate::tls`): the CA
//! download, its QR code, the admin summary, and the redirect of browsers
//! from plain HTTP.
//!
//! - `GET /ca.crt` (public): the local CA, for tablets to install. Served
//!   on both listeners and never redirected: a tablet fetches it before it
//!   trusts the HTTPS one.
//! - `GET /api/v1/tls` (admin): the HTTPS URLs, the CA's fingerprint and
//!   both expiry dates, for the admin page.
//! - `GET /api/v1/tls/ca-qr.svg` (viewer): a QR code of the CA download.
//! - With TLS on, the plain listener answers a browser's page request
//!   (GET or HEAD, `Accept: text/html`, not under `/api/`, not `/metrics`,
//!   `/healthz` or `/ca.crt`) with `308` to the same host on the TLS port.
//!   API clients, streams (EventSource sends `text/event-stream`), the
//!   mesas compatibility API and monitoring keep plain HTTP.
//!
//! URLs name the host the caller used, unless that is the Pi itself
//! (`localhost`, a loopback address): a QR code is scanned by a tablet,
//! so it then names the Pi's first LAN address ([`crate::tls::names`]).

use super::AppState;
use super::error::{ApiError, AsAdmin, AsViewer};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The bound ports, for the URLs this module makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// `http.listen`'s port.
    pub http: u16,
    /// `http.tls_listen`'s port; `None` when TLS is off.
    pub https: Option<u16>,
}

/// The host part of the request's `Host` header (without the port, IPv6
/// in brackets), if it is a plain name or address.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host.split(':').next()?.to_string(),
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    plain.then(|| name.to_ascii_lowercase())
}

fn is_self(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A name in a URL: IPv6 addresses in brackets.
fn url_host(name: &str) -> String {
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{name}]")
    } else {
        name.to_string()
    }
}

/// The host a tablet should use: the caller's, unless it is the Pi itself
/// (module doc).
pub fn lan_host(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(host) = request_host(headers).filter(|h| !is_self(h)) {
        return host;
    }
    let names = crate::tls::names::current(&app.config.http.tls.extra_names);
    let lan_ip = names
        .iter()
        .find(|n| n.parse::<IpAddr>().is_ok_and(|ip| !ip.is_loopback()));
    let local = names.iter().find(|n| n.ends_with(".local"));
    lan_ip
        .or(local)
        .map_or_else(|| "localhost".to_string(), |n| url_host(n))
}

/// `scheme://host:port` a tablet should use: HTTPS when it is on.
pub fn origin(app: &AppState, headers: &HeaderMap) -> String {
    let host = lan_host(app, headers);
    match app.ports.https {
        Some(port) => format!("https://{host}:{port}"),
        None => format!("http://{host}:{}", app.ports.http),
    }
}

/// An SVG QR code of `text`.
pub fn qr_svg(text: &str) -> Result<Response, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("qr: {e}"),
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// `GET /ca.crt`.
pub async fn ca_crt(State(app): State<AppState>) -> Result<Response, ApiError> {
    let path = app.config.http.tls.ca_cert.clone();
    let pem = tokio::task::spawn_blocking(move || crate::tls::read_pem(&path, "http.tls_ca_cert"))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|_| ApiError::not_found("no local CA yet (run `mesero tls init`)"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"mesero-ca.crt\"",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pem,
    )
        .into_response())
}

/// The URL of the CA download for a tablet: plain HTTP (it does not
/// trust the HTTPS listener yet).
fn ca_url(app: &AppState, headers: &HeaderMap) -> String {
    format!(
        "http://{}:{}/ca.crt",
        lan_host(app, headers),
        app.ports.http
    )
}

/// `GET /api/v1/tls`.
pub async fn summary(
    State(app): State<AppState>,
    _: AsAdmin,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let files = app.config.http.tls.clone();
    let summary = tokio::task::spawn_blocking(move || crate::tls::summary(&files))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let names = crate::tls::names::current(&app.config.http.tls.extra_names);
    let https_urls: Vec<String> = match app.ports.https {
        Some(port) => names
            .iter()
            .filter(|n| !is_self(n))
            .map(|n| format!("https://{}:{port}", url_host(n)))
            .collect(),
        None => Vec::new(),
    };
    let time = |t: Option<std::time::SystemTime>| t.map(crate::clock::format);
    let ca = match &summary {
        Ok(s) => json!({
            "url": ca_url(&app, &headers),
            "qr": "/api/v1/tls/ca-qr.svg",
            "fingerprint_sha256": s.ca_fingerprint,
            "expires_at": time(s.ca_expires_at),
        }),
        Err(_) => Value::Null,
    };
    Ok(Json(json!({
        "enabled": app.ports.https.is_some(),
        "https_port": app.ports.https,
        "https_urls": https_urls,
        "origin": origin(&app, &headers),
        "ca": ca,
        "certificate": {
            "names": names,
            "expires_at": summary.as_ref().ok().and_then(|s| time(s.cert_expires_at)),
        },
        "error": summary.err().map(|e| e.to_string()),
    })))
}

/// `GET /api/v1/tls/ca-qr.svg`.
pub async fn ca_qr(
    State(app): State<AppState>,
    _: AsViewer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    qr_svg(&ca_url(&app, &headers))
}

/// Whether a plain-HTTP request is a browser asking for a page (module
/// doc), which is sent to HTTPS.
fn is_page_request(req: &Request) -> bool {
    let path = req.uri().path();
    let method = req.method();
    (method == Method::GET || method == Method::HEAD)
        && !path.starts_with("/api/")
        && !matches!(path, "/metrics" | "/healthz" | "/ca.crt")
        && req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// The plain listener's middleware with TLS on: browsers go to HTTPS.
pub async fn redirect_browsers(State(port): State<u16>, req: Request, next: Next) -> Response {
    if !is_page_request(&req) {
        return next.run(req).await;
    }
    let Some(host) = request_host(req.headers()) else {
        return next.run(req).await;
    };
    let rest = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let location = format!("https://{host}:{port}{rest}");
    match axum::http::HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().expect("header"));
        h
    }

    #[test]
    fn the_host_is_read_without_its_port() {
        assert_eq!(
            request_host(&headers("Mesero.local:8080")).as_deref(),
            Some("mesero.local")
        );
        assert_eq!(
            request_host(&headers("192.168.1.20")).as_deref(),
            Some("192.168.1.20")
        );
        assert_eq!(
            request_host(&headers("[::1]:8080")).as_deref(),
            Some("[::1]")
        );
        assert_eq!(request_host(&headers("evil/path:1")), None);
        assert!(is_self("localhost") && is_self("127.0.0.1") && is_self("[::1]"));
        assert!(!is_self("mesero.local"));
    }
}
