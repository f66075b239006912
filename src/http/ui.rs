//! The tablet app (SPEC §2 `GET /`, `GET /kitchen`), compiled into the
//! binary so the appliance has no files to lose: plain HTML, CSS and JS
//! modules from `web/`, no build step, nothing from the internet.
//!
//! - `/`, `/kitchen`, `/pair`: the pages; `/app/<file>`: their scripts,
//!   styles and icon; `/sw.js` and `/manifest.webmanifest` at the root,
//!   where a service worker must live to control the whole origin.
//! - `GET /api/v1/ui` (public): what a page needs before it can draw
//!   anything: the site's name, `site.language`, `site.timezone`, and
//!   the role of the token it presented (null without a valid one).
//!
//! Each file is gzipped once, the first time any is asked for, and sent
//! compressed to a browser that accepts gzip (`Vary: Accept-Encoding`);
//! the whole app stays under its 200 KB budget either way (the test
//! `the_app_shell_stays_under_its_weight_budget` checks). Only these
//! files: the API answers and the streams are never compressed (an event
//! stream must not wait in a compressor's buffer). `Cache-Control:
//! no-cache` makes the browser revalidate, so a new binary's app shows up
//! on the next load.

use super::AppState;
use super::error::{ApiError, AsViewer, Need};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::LazyLock;

/// One embedded file: its URL name, content type and bytes.
struct Asset {
    name: &'static str,
    kind: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files under `/app/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        kind: "text/css; charset=utf-8",
        body: include_str!("../../web/app.css"),
    },
    Asset {
        name: "i18n.js",
        kind: JS,
        body: include_str!("../../web/i18n.js"),
    },
    Asset {
        name: "core.js",
        kind: JS,
        body: include_str!("../../web/core.js"),
    },
    Asset {
        name: "live.js",
        kind: JS,
        body: include_str!("../../web/live.js"),
    },
    Asset {
        name: "floor.js",
        kind: JS,
        body: include_str!("../../web/floor.js"),
    },
    Asset {
        name: "host.js",
        kind: JS,
        body: include_str!("../../web/host.js"),
    },
    Asset {
        name: "alerts.js",
        kind: JS,
        body: include_str!("../../web/alerts.js"),
    },
    Asset {
        name: "admin.js",
        kind: JS,
        body: include_str!("../../web/admin.js"),
    },
    Asset {
        name: "devices.js",
        kind: JS,
        body: include_str!("../../web/devices.js"),
    },
    Asset {
        name: "charts.js",
        kind: JS,
        body: include_str!("../../web/charts.js"),
    },
    Asset {
        name: "main.js",
        kind: JS,
        body: include_str!("../../web/main.js"),
    },
    Asset {
        name: "kitchen.js",
        kind: JS,
        body: include_str!("../../web/kitchen.js"),
    },
    Asset {
        name: "pair.js",
        kind: JS,
        body: include_str!("../../web/pair.js"),
    },
    Asset {
        name: "icon.svg",
        kind: "image/svg+xml",
        body: include_str!("../../web/icon.svg"),
    },
];

const HTML: &str = "text/html; charset=utf-8";

static INDEX: Asset = Asset {
    name: "index.html",
    kind: HTML,
    body: include_str!("../../web/index.html"),
};
static KITCHEN: Asset = Asset {
    name: "kitchen.html",
    kind: HTML,
    body: include_str!("../../web/kitchen.html"),
};
static PAIR: Asset = Asset {
    name: "pair.html",
    kind: HTML,
    body: include_str!("../../web/pair.html"),
};
static SERVICE_WORKER: Asset = Asset {
    name: "sw.js",
    kind: JS,
    body: include_str!("../../web/sw.js"),
};
static MANIFEST: Asset = Asset {
    name: "manifest.webmanifest",
    kind: "application/manifest+json",
    body: include_str!("../../web/manifest.webmanifest"),
};

/// Every file the app has.
fn all_files() -> impl Iterator<Item = &'static Asset> {
    ASSETS
        .iter()
        .chain([&INDEX, &KITCHEN, &PAIR, &SERVICE_WORKER, &MANIFEST])
}

/// The gzipped bytes of every file, by name, made on first use.
static GZIPPED: LazyLock<HashMap<&'static str, Bytes>> = LazyLock::new(|| {
    all_files()
        .filter_map(|a| Some((a.name, gzip(a.body.as_bytes())?)))
        .collect()
});

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// Whether the request's `Accept-Encoding` takes gzip (not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn file(headers: &HeaderMap, asset: &'static Asset) -> Response {
    let common = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.kind)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    match GZIPPED.get(asset.name).filter(|_| accepts_gzip(headers)) {
        Some(gzipped) => (
            common,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            gzipped.clone(),
        )
            .into_response(),
        None => (common, asset.body).into_response(),
    }
}

pub async fn index(headers: HeaderMap) -> Response {
    file(&headers, &INDEX)
}

pub async fn kitchen(headers: HeaderMap) -> Response {
    file(&headers, &KITCHEN)
}

pub async fn pair(headers: HeaderMap) -> Response {
    file(&headers, &PAIR)
}

pub async fn service_worker(headers: HeaderMap) -> Response {
    file(&headers, &SERVICE_WORKER)
}

pub async fn manifest(headers: HeaderMap) -> Response {
    file(&headers, &MANIFEST)
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| file(&headers, a))
        .ok_or_else(|| ApiError::not_found("no such file"))
}

/// `GET /api/v1/ui`: public, so a page can show the site's language and
/// a sign-in prompt before it has a token.
pub async fn info(State(app): State<AppState>, caller: Result<AsViewer, ApiError>) -> Json<Value> {
    let site = &app.config.site;
    Json(json!({
        "site": site.name,
        "language": site.language,
        "timezone": site.timezone,
        "role": caller.ok().map(|Need(c)| c.role.as_str()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte the app can make a browser download.
    fn shell_bytes() -> usize {
        all_files().map(|a| a.body.len()).sum()
    }

    /// The budget is 200 KB for the whole app; stay well under it.
    #[test]
    fn the_app_shell_stays_under_its_weight_budget() {
        let bytes = shell_bytes();
        assert!(bytes < 150 * 1024, "the app is {bytes} bytes");
        let gzipped: usize = GZIPPED.values().map(Bytes::len).sum();
        assert_eq!(GZIPPED.len(), all_files().count(), "every file gzips");
        assert!(gzipped < bytes / 2, "gzipped {gzipped} of {bytes} bytes");
    }

    #[test]
    fn gzip_goes_only_to_who_accepts_it() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, zstd"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
