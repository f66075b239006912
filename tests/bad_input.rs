//! Bad input gets the documented 4xx JSON error and changes nothing; a bad
//! config makes `mesero check` fail naming the key.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    token: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path,
        token: Some(ADMIN),
        body: body.to_string(),
        status,
        code,
    }
}

fn cases() -> Vec<Case> {
    let put = "/api/v1/tables/1/state";
    vec![
        case(
            "malformed JSON",
            "PUT",
            put,
            r#"{"state": "occupied""#,
            400,
            "bad_json",
        ),
        case("not JSON at all", "PUT", put, "occupied", 400, "bad_json"),
        case("empty body", "PUT", put, "", 400, "bad_json"),
        case(
            "wrong type",
            "PUT",
            put,
            r#"{"state": 3}"#,
            400,
            "bad_request",
        ),
        case(
            "unknown state",
            "PUT",
            put,
            r#"{"state": "flying"}"#,
            400,
            "bad_request",
        ),
        case(
            "wrong hold type",
            "PUT",
            put,
            r#"{"state": "occupied", "hold_minutes": "ten"}"#,
            400,
            "bad_request",
        ),
        case(
            "hold out of range",
            "PUT",
            put,
            r#"{"state": "occupied", "hold_minutes": -5}"#,
            422,
            "invalid_value",
        ),
        case(
            "unknown field",
            "PUT",
            put,
            r#"{"state": "occupied", "colour": "red"}"#,
            400,
            "bad_request",
        ),
        case(
            "missing field",
            "PUT",
            put,
            r#"{"hold_minutes": 5}"#,
            400,
            "bad_request",
        ),
        case(
            "unknown table",
            "PUT",
            "/api/v1/tables/99/state",
            r#"{"state": "occupied"}"#,
            404,
            "not_found",
        ),
        case(
            "non-numeric table",
            "PUT",
            "/api/v1/tables/abc/state",
            r#"{"state": "occupied"}"#,
            400,
            "bad_request",
        ),
        case(
            "oversized body",
            "PUT",
            put,
            &format!(
                r#"{{"state": "occupied", "pad": "{}"}}"#,
                "x".repeat(100_000)
            ),
            413,
            "too_large",
        ),
        case(
            "create: wrong type",
            "POST",
            "/api/v1/tables",
            r#"{"id": "seven"}"#,
            400,
            "bad_request",
        ),
        case(
            "create: unknown field",
            "POST",
            "/api/v1/tables",
            r#"{"id": 9, "number": "9", "legs": 4}"#,
            400,
            "bad_request",
        ),
        case(
            "create: duplicate id",
            "POST",
            "/api/v1/tables",
            r#"{"id": 1, "number": "1"}"#,
            409,
            "conflict",
        ),
        case(
            "patch: unknown table",
            "PATCH",
            "/api/v1/tables/99",
            r#"{"seats": 2}"#,
            404,
            "not_found",
        ),
        case(
            "patch: bad seats",
            "PATCH",
            "/api/v1/tables/1",
            r#"{"seats": -2}"#,
            400,
            "bad_request",
        ),
        case(
            "delete: unknown table",
            "DELETE",
            "/api/v1/tables/99",
            "",
            404,
            "not_found",
        ),
        case(
            "events: bad since",
            "GET",
            "/api/v1/events?since=yesterday",
            "",
            400,
            "bad_request",
        ),
        case(
            "events: negative since",
            "GET",
            "/api/v1/events?since=-1",
            "",
            400,
            "bad_request",
        ),
        case(
            "events: bad limit",
            "GET",
            "/api/v1/events?limit=0",
            "",
            400,
            "bad_request",
        ),
        case(
            "events: bad type filter",
            "GET",
            "/api/v1/events?type=tab",
            "",
            400,
            "bad_request",
        ),
        case(
            "events: bad table filter",
            "GET",
            "/api/v1/events?table=one",
            "",
            400,
            "bad_request",
        ),
        case(
            "events: misspelt filter",
            "GET",
            "/api/v1/events?tabel=1",
            "",
            400,
            "bad_request",
        ),
        case(
            "stream: bad since",
            "GET",
            "/api/v1/stream?since=abc",
            "",
            400,
            "bad_request",
        ),
        case(
            "stream: bad tables",
            "GET",
            "/api/v1/stream?tables=1,x",
            "",
            400,
            "bad_request",
        ),
        case(
            "stream: bad types",
            "GET",
            "/api/v1/stream?types=nonsense",
            "",
            400,
            "bad_request",
        ),
        case(
            "stream: unknown parameter",
            "GET",
            "/api/v1/stream?table=1",
            "",
            400,
            "bad_request",
        ),
        case(
            "ws: bad since",
            "GET",
            "/api/v1/ws?since=soon",
            "",
            400,
            "bad_request",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let before = get_json(&d.base, "/api/v1/snapshot").await;

    for c in cases() {
        let url = format!("{}{}", d.base, c.path);
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut req = http()
            .request(method, url)
            .header("content-type", "application/json");
        if let Some(token) = c.token {
            req = req.bearer_auth(token);
        }
        if !c.body.is_empty() || c.method == "PUT" {
            req = req.body(c.body.clone());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = res.text().await.expect("body");
        assert_eq!(status, c.status, "{}: {text}", c.what);
        assert!(
            content_type.starts_with("application/json"),
            "{}: {content_type}",
            c.what
        );
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text}", c.what));
        assert_eq!(body["error"]["code"], c.code, "{}: {text}", c.what);
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "{}: the error says what is wrong",
            c.what
        );
    }

    // The Last-Event-ID header is checked like ?since=.
    let res = http()
        .get(format!("{}/api/v1/stream", d.base))
        .header("last-event-id", "not-a-seq")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 400);

    let after = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(after["seq"], before["seq"], "no event was recorded");
    assert_eq!(after["tables"], before["tables"], "no table changed");
    d.stop().await;
}

/// Runs `mesero check --config <file>` on `text` with extra env.
fn check(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesero.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("MESERO_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run mesero check");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn check_rejects_bad_config_naming_the_key() {
    let (ok, out) = check(FIXTURE, &[]);
    assert!(ok, "the fixture is valid: {out}");
    assert!(
        out.contains("tables (seed): 4"),
        "a summary is printed: {out}"
    );

    let bad = [
        ("[http]\nlisen = \"0.0.0.0:80\"\n", "http.lisen"),
        ("[storage]\nretention_days = -3\n", "storage.retention_days"),
        ("[http]\nheartbeat = \"soon\"\n", "http.heartbeat"),
        ("[occupancy]\noccupy_after = 10\n", "occupancy.occupy_after"),
        ("[colour]\nred = true\n", "colour"),
        ("[auth]\nanonymous = \"root\"\n", "auth.anonymous"),
        ("[[tables]]\nid = 1\nseats = \"four\"\n", "tables[0].seats"),
    ];
    for (text, key) in bad {
        let (ok, out) = check(text, &[]);
        assert!(!ok, "{key}: check must fail");
        assert!(out.contains(key), "{key}: the error names the key: {out}");
        assert_eq!(
            out.trim().lines().count(),
            1,
            "{key}: one clear line: {out}"
        );
    }

    let (ok, out) = check(FIXTURE, &[("MESERO_HTTP_LISTEN", "not-an-address")]);
    assert!(!ok);
    assert!(
        out.contains("MESERO_HTTP_LISTEN") && out.contains("http.listen"),
        "{out}"
    );
    let (ok, out) = check(FIXTURE, &[("MESERO_HTTP_LISTN", "127.0.0.1:1")]);
    assert!(!ok, "a misspelt override is an error too");
    assert!(out.contains("MESERO_HTTP_LISTN"), "{out}");
}
