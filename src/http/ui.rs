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
//! Everything is served uncompressed, deliberately: the whole app is far
//! under its 200 KB budget (the test `the_app_shell_stays_under_its_weight_budget`
//! checks), gzip would need a compression crate or a build step, and the
//! service worker keeps a copy on the tablet anyway, so the bytes cross
//! the LAN once per version. `Cache-Control: no-cache` makes the browser
//! revalidate, so a new binary's app shows up on the next load.

use super::AppState;
use super::error::{ApiError, AsViewer, Need};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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

const INDEX: &str = include_str!("../../web/index.html");
const KITCHEN: &str = include_str!("../../web/kitchen.html");
const PAIR: &str = include_str!("../../web/pair.html");
const SERVICE_WORKER: &str = include_str!("../../web/sw.js");
const MANIFEST: &str = include_str!("../../web/manifest.webmanifest");

fn file(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

const HTML: &str = "text/html; charset=utf-8";

pub async fn index() -> Response {
    file(HTML, INDEX)
}

pub async fn kitchen() -> Response {
    file(HTML, KITCHEN)
}

pub async fn pair() -> Response {
    file(HTML, PAIR)
}

pub async fn service_worker() -> Response {
    file(JS, SERVICE_WORKER)
}

pub async fn manifest() -> Response {
    file("application/manifest+json", MANIFEST)
}

/// `/app/<name>`: one of [`ASSETS`], or a 404.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| file(a.kind, a.body))
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
        ASSETS.iter().map(|a| a.body.len()).sum::<usize>()
            + INDEX.len()
            + KITCHEN.len()
            + PAIR.len()
            + SERVICE_WORKER.len()
            + MANIFEST.len()
    }

    /// The budget is 200 KB for the whole app; stay well under it.
    #[test]
    fn the_app_shell_stays_under_its_weight_budget() {
        let bytes = shell_bytes();
        assert!(bytes < 150 * 1024, "the app is {bytes} bytes");
    }
}
