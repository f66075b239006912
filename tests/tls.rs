//! HTTPS on the LAN and tablet pairing (issue 14): real TLS clients
//! (reqwest and tokio-rustls, ring) trusting the CA the daemon made, over
//! loopback.

mod common;

use common::{ADMIN, PATIENCE, STAFF, Sse, TestDaemon, VIEWER, config, https_client, tls_config};
use futures_util::StreamExt as _;
use mesero::clock::Wall;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_sse_and_websocket_work_over_https_with_the_daemon_s_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, https, ca) = TestDaemon::start_tls(tls_config(dir.path(), &[])).await;
    let client = https_client(&ca);

    let tables: Value = client
        .get(format!("{https}/api/v1/tables"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("GET over TLS")
        .json()
        .await
        .expect("json");
    assert_eq!(tables.as_array().map(Vec::len), Some(4));

    let mut sse = Sse::connect_with(&client, &https, "/api/v1/stream", &[]).await;
    assert_eq!(sse.status, 200);
    let (first, _) = sse.next_json().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    let (status, _) = put(&client, &https, STAFF, 2, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200);
    let (change, data) = sse.next_json().await;
    assert_eq!(change.event.as_deref(), Some("table.state"));
    assert_eq!(data["table"], 2);

    // WebSocket over tokio-rustls, trusting the same CA.
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&ca).expect("CA");
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = d.daemon.https_addr().expect("https");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("the certificate is valid for 127.0.0.1");
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("wss://127.0.0.1:{}/api/v1/ws?token={VIEWER}", addr.port()),
        stream,
    )
    .await
    .expect("websocket over TLS");
    let text = loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            break text;
        }
    };
    let snapshot: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(snapshot["type"], "snapshot");
    d.stop().await;
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    table: i64,
    body: &str,
) -> (u16, Value) {
    let res = client
        .put(format!("{base}/api/v1/tables/{table}/state"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("PUT");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn files(dir: &Path) -> mesero::config::TlsFiles {
    config(dir, &[]).http.tls
}

#[test]
fn the_certificate_covers_loopback_and_renewal_keeps_the_ca() {
    use mesero::tls::issue::{covers, ensure};
    let dir = tempfile::tempdir().expect("tempdir");
    let files = files(dir.path());
    assert_eq!(
        files.cert,
        dir.path().join("tls/server.crt"),
        "next to the database"
    );
    let names = mesero::tls::names::current(&[]);
    assert!(names.iter().any(|n| n == "127.0.0.1") && names.iter().any(|n| n == "localhost"));
    let now = SystemTime::now();

    let first = ensure(&files, &names, now, false).expect("init");
    assert!(first.ca_created && first.issued.is_some());
    let ca = std::fs::read(&files.ca_cert).expect("CA");
    let ca_der = mesero::tls::first_cert(
        "http.tls_ca_cert",
        &files.ca_cert,
        &String::from_utf8_lossy(&ca),
    )
    .expect("CA der");
    let cert = |files: &mesero::config::TlsFiles| {
        let pem = std::fs::read_to_string(&files.cert).expect("cert");
        mesero::tls::first_cert("http.tls_cert", &files.cert, &pem).expect("der")
    };
    let loopback = [
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ];
    assert_eq!(covers(&ca_der, &cert(&files), &loopback, now), Ok(()));
    for key in [&files.key, &files.ca_key] {
        let mode = std::fs::metadata(key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }

    let again = ensure(&files, &names, now, false).expect("second run");
    assert_eq!(
        (again.ca_created, again.issued),
        (false, None),
        "nothing due"
    );

    // A year on: fewer than 30 days left, so a new certificate;
    // the CA stays byte for byte.
    let later = now + Duration::from_secs(380 * 86_400);
    let renewed = ensure(&files, &names, later, false).expect("renewal");
    assert!(!renewed.ca_created);
    assert!(
        renewed
            .issued
            .as_deref()
            .is_some_and(|r| r.contains("30 days")),
        "{renewed:?}"
    );
    assert_eq!(std::fs::read(&files.ca_cert).expect("CA"), ca);
    assert_eq!(covers(&ca_der, &cert(&files), &loopback, later), Ok(()));

    // A new address (DHCP) is a missing name: renewed too.
    let mut more = names.clone();
    more.push("10.9.8.7".into());
    let named = ensure(&files, &more, later, false).expect("new name");
    assert!(
        named
            .issued
            .as_deref()
            .is_some_and(|r| r.contains("10.9.8.7")),
        "{named:?}"
    );
    assert_eq!(std::fs::read(&files.ca_cert).expect("CA"), ca);

    // A CA whose key went missing is never made again.
    std::fs::remove_file(&files.ca_key).expect("rm");
    let err = ensure(&files, &names, later, true).expect_err("no CA key");
    assert!(err.to_string().starts_with("http.tls_ca_key:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_sends_browsers_to_https_and_nobody_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, https, ca) = TestDaemon::start_tls(tls_config(dir.path(), &[])).await;
    let port = d.daemon.https_addr().expect("https").port();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let browser = "text/html,application/xhtml+xml,*/*;q=0.8";
    let get = |path: &str, accept: &str| {
        plain
            .get(format!("{}{path}", d.base))
            .header("accept", accept.to_string())
            .bearer_auth(VIEWER)
            .send()
    };

    let page = get("/?zone=terraza", browser).await.expect("GET /");
    assert_eq!(page.status(), 308);
    assert_eq!(
        page.headers()["location"],
        format!("https://127.0.0.1:{port}/?zone=terraza").as_str()
    );
    let head = plain
        .head(format!("{}/kitchen", d.base))
        .header("accept", browser)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 308);

    for path in [
        "/api/v1/tables",
        "/api/v1/mesas",
        "/api/v1/snapshot",
        "/healthz",
        "/metrics",
        "/ca.crt",
    ] {
        let res = get(path, browser).await.expect("GET");
        assert_eq!(res.status(), 200, "{path} stays on plain HTTP");
    }
    let ca_res = get("/ca.crt", browser).await.expect("GET /ca.crt");
    assert_eq!(
        ca_res.headers()["content-type"],
        "application/x-x509-ca-cert"
    );
    assert_eq!(
        ca_res.text().await.expect("body"),
        std::fs::read_to_string(&ca).expect("CA")
    );
    let stream = get("/api/v1/stream", "text/event-stream")
        .await
        .expect("SSE");
    assert_eq!(stream.status(), 200, "EventSource stays");
    drop(stream);
    let curl = get("/", "*/*").await.expect("curl");
    assert_eq!(curl.status(), 200, "not a browser: no redirect");
    let post = plain
        .post(format!("{}/api/v1/alerts", d.base))
        .bearer_auth(STAFF)
        .header("accept", browser)
        .json(&json!({"kind": "call", "table": 1}))
        .send()
        .await
        .expect("POST");
    assert_ne!(post.status(), 308, "only GET and HEAD move");

    // Over HTTPS, the page itself is served.
    let client = https_client(&ca);
    let page = client
        .get(format!("{https}/"))
        .header("accept", browser)
        .send()
        .await
        .expect("GET / over TLS");
    assert_eq!(page.status(), 200);

    let tls: Value = client
        .get(format!("{https}/api/v1/tls"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET /api/v1/tls")
        .json()
        .await
        .expect("json");
    assert_eq!(tls["enabled"], true);
    assert_eq!(tls["https_port"], port);
    let fingerprint = tls["ca"]["fingerprint_sha256"]
        .as_str()
        .expect("fingerprint");
    assert_eq!(fingerprint.len(), 32 * 3 - 1);
    assert!(tls["certificate"]["expires_at"].is_string(), "{tls}");
    assert!(
        tls["ca"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/ca.crt"))
    );
    let qr = client
        .get(format!("{https}/api/v1/tls/ca-qr.svg"))
        .send()
        .await
        .expect("QR");
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let status = client
        .get(format!("{https}/api/v1/tls"))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("GET")
        .status();
    assert_eq!(status, 403, "admin only");
    d.stop().await;
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_code_works_once_expires_and_its_tablet_can_be_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(SystemTime::now());
    let cfg = tls_config(dir.path(), &[("MESERO_AUTH_PAIRING_LIFETIME", "10m")]);
    let ca = cfg.http.tls.ca_cert.clone();
    let d = TestDaemon::start_at(cfg, wall.clone()).await;
    let port = d.daemon.https_addr().expect("https").port();
    let https = format!("https://127.0.0.1:{port}");
    let client = https_client(&ca);

    let (status, created) = post(
        &client,
        format!("{https}/api/v1/pairings"),
        Some(ADMIN),
        json!({"name": "bar tablet", "role": "staff"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let code = created["code"].as_str().expect("code").to_string();
    assert_eq!(code.len(), mesero::pairing::CODE_LEN);
    assert_eq!(
        created["url"],
        format!("https://{}:{port}/pair?code={code}", lan_host_of(&created)).as_str()
    );
    let qr = client
        .get(format!("{https}{}", created["qr"].as_str().expect("qr")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("QR");
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let (status, _) = post(
        &client,
        format!("{https}/api/v1/pairings"),
        Some(STAFF),
        json!({"name": "x", "role": "staff"}),
    )
    .await;
    assert_eq!(status, 403, "only an admin pairs");

    let pair = |code: &str| {
        post(
            &client,
            format!("{https}/api/v1/pair"),
            None,
            json!({"code": code}),
        )
    };
    let (status, paired) = pair(&code.to_lowercase()).await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(
        (paired["role"].as_str(), paired["name"].as_str()),
        (Some("staff"), Some("bar tablet"))
    );
    let token = paired["token"].as_str().expect("token").to_string();
    let (status, again) = pair(&code).await;
    assert_eq!(status, 404, "a code works once: {again}");

    // The tablet's token is a staff token named after the tablet.
    let (status, _) = put(&client, &https, &token, 3, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200);
    let list: Value = client
        .get(format!("{https}/api/v1/pairings"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["pairings"][0]["id"].as_i64().expect("id");
    assert_eq!(list["pairings"][0]["status"], "paired");
    let db = rusqlite::Connection::open(dir.path().join("mesero.db")).expect("db");
    let stored: Vec<u8> = db
        .query_row(
            "SELECT token_sha256 FROM pairings WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(
        stored,
        mesero::pairing::digest(&token),
        "only the digest is stored"
    );

    // Revoked: refused at once, and its open stream is closed.
    let mut sse = Sse::connect_with(
        &client,
        &https,
        &format!("/api/v1/stream?token={token}"),
        &[],
    )
    .await;
    assert_eq!(sse.status, 200);
    sse.next_json().await;
    let revoked = client
        .delete(format!("{https}/api/v1/pairings/{id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 200);
    let (status, _) = put(&client, &https, &token, 3, r#"{"state":"free"}"#).await;
    assert_eq!(status, 401, "a revoked token stops working");
    loop {
        match sse.next().await {
            None => break,
            Some(msg) => assert!(msg.event.as_deref() != Some("snapshot"), "the stream ends"),
        }
    }

    // An unused code expires with auth.pairing_lifetime.
    let (_, late) = post(
        &client,
        format!("{https}/api/v1/pairings"),
        Some(ADMIN),
        json!({"name": "kitchen", "role": "viewer", "expires_in_minutes": 5}),
    )
    .await;
    let late_code = late["code"].as_str().expect("code").to_string();
    wall.advance(Duration::from_secs(6 * 60));
    let (status, _) = pair(&late_code).await;
    assert_eq!(status, 404, "expired");
    let (status, body) = post(
        &client,
        format!("{https}/api/v1/pairings"),
        Some(ADMIN),
        json!({"name": "x", "role": "staff", "expires_in_minutes": 11}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expires_in_minutes"))
    );

    // Each step is an event with its actor.
    let events = common::all_events(&d.base, 0).await;
    let kinds: Vec<(String, String)> = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("pairing."))
        })
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().into(),
                e["actor"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("pairing.created", "staff:admin"),
        ("pairing.completed", "staff:bar tablet"),
        ("pairing.revoked", "staff:admin"),
        ("pairing.created", "staff:admin"),
    ]
    .iter()
    .map(|(k, a)| (k.to_string(), a.to_string()))
    .collect();
    assert_eq!(kinds, expected);
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&code),
        "no code in events"
    );
    d.stop().await;
}

/// The host a created pairing's URL names (a LAN address or name of this
/// machine: the test connects over loopback).
fn lan_host_of(created: &Value) -> String {
    let url = created["url"].as_str().unwrap_or_default();
    let rest = url.strip_prefix("https://").unwrap_or_default();
    rest.rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_attempts_are_rate_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(
        dir.path(),
        &[("MESERO_AUTH_PAIRING_ATTEMPTS_PER_MINUTE", "2")],
    ))
    .await;
    let client = common::http();
    for _ in 0..2 {
        let (status, body) = post(
            &client,
            format!("{}/api/v1/pair", d.base),
            None,
            json!({"code": "ABCDEFGHJKMN"}),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }
    let res = client
        .post(format!("{}/api/v1/pair", d.base))
        .json(&json!({"code": "ABCDEFGHJKMN"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let metrics = client
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("mesero_pairing_refused_total 3"),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_names_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A certificate of one's own (no mesero CA key): served as it is, so
    // one that does not parse is an error naming http.tls_cert.
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).expect("dir");
    std::fs::write(tls_dir.join("server.crt"), "not a certificate").expect("write");
    std::fs::write(tls_dir.join("server.key"), "not a key").expect("write");
    let err = start_error(tls_config(dir.path(), &[])).await;
    assert!(err.contains("http.tls_cert:"), "{err}");

    // A key that cannot be written where http.tls_key says.
    let fresh = tempfile::tempdir().expect("tempdir");
    std::fs::write(fresh.path().join("blocker"), "a file").expect("write");
    let unwritable = fresh.path().join("blocker/server.key");
    let err = start_error(tls_config(
        fresh.path(),
        &[("MESERO_HTTP_TLS_KEY", unwritable.to_str().expect("utf-8"))],
    ))
    .await;
    assert!(err.contains("http.tls_key:"), "{err}");

    let err = mesero::config::Config::from_toml(
        Path::new("t.toml"),
        "[http]\ntls_names = [\"bad name\"]\n",
        std::iter::empty(),
    )
    .expect_err("bad name");
    assert!(err.to_string().contains("http.tls_names[0]"), "{err}");
}

async fn start_error(cfg: mesero::config::Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    match mesero::daemon::Daemon::start(cfg, Some(listener), mesero::systemd::Supervision::none())
        .await
    {
        Ok(d) => {
            d.stop().await;
            panic!("the daemon started with a bad certificate")
        }
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn tls_init_and_tls_ca_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("mesero.db");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesero"))
            .args(args)
            .args(["--config", "tests/fixtures/test.toml"])
            .env("MESERO_STORAGE_PATH", &db)
            .output()
            .expect("run mesero");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run(&["tls", "init"]);
    assert!(first.contains("created the local CA"), "{first}");
    assert!(first.contains("127.0.0.1"), "{first}");
    let second = run(&["tls", "init"]);
    assert!(
        second.contains("(kept)") && second.contains("kept (--force"),
        "{second}"
    );
    let pem = run(&["tls", "ca"]);
    assert_eq!(
        pem,
        std::fs::read_to_string(dir.path().join("tls/ca.crt")).expect("CA")
    );
    let path = run(&["tls", "ca", "--path"]);
    assert!(path.contains("SHA-256 fingerprint: "), "{path}");
    assert!(
        first.contains(
            path.lines()
                .nth(1)
                .unwrap_or("?")
                .trim_start_matches("SHA-256 fingerprint: ")
        )
    );
}
