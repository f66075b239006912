//! The tablet app in a real headless Chromium (Debian's `chromium`, driven
//! by `chromedriver` over WebDriver): issue 14's browser tests 1-7 against
//! a daemon on the dev floor plan (config/mesero.toml's 12 tables, without
//! its simulated sensors, so nothing moves unless a test moves it), plus
//! pairing a tablet from the admin page. Every browser opens the app over
//! HTTPS (the daemon's TLS listener, its CA trusted in the browser's NSS
//! store, see `browser/webdriver.rs`); the tests' own API calls use plain
//! HTTP.
//!
//! Without chromium the suite passes without running and says so (see
//! `browser/webdriver.rs`); under `CI=true` it must run. The tests take
//! one browser suite lock each, so at most one set of browsers runs at a
//! time on a small CI machine. Test 7 and the pairing test write
//! docs/screenshots/*.png.

mod common;
#[path = "browser/webdriver.rs"]
mod webdriver;

use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use webdriver::{Driver, Session};

const STAFF_TOKEN: &str = "dev-staff";
const ADMIN_TOKEN: &str = "dev-admin";

/// One browser test at a time (each starts its own Chromium instances).
static SUITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The dev config's floor plan and tokens, without the simulated sensors,
/// plus one MQTT sensor on table 12 that never reports (so the table goes
/// `unknown`, "sin datos"); HTTPS on `tls_listen` (its CA and certificate
/// made in `dir/tls` at the first start, kept across a restart).
fn dev_config(dir: &std::path::Path, tls_listen: &str) -> mesero::config::Config {
    let text = std::fs::read_to_string("config/mesero.toml").expect("dev config");
    let cut = text
        .find("\n[[sensors]]\n")
        .expect("the dev config has sensors");
    let mut text = text[..cut].to_string();
    text.push_str(
        "\n[[sensors]]\nid = \"node-12\"\nkind = \"mqtt\"\ntable = 12\nstale_after = \"1s\"\n",
    );
    let env = vec![
        (
            "MESERO_STORAGE_PATH".to_string(),
            dir.join("mesero.db").display().to_string(),
        ),
        ("MESERO_MQTT_LISTEN".into(), "127.0.0.1:0".into()),
        ("MESERO_HTTP_RETRY".into(), "200ms".into()),
        ("MESERO_HTTP_TLS_LISTEN".into(), tls_listen.into()),
    ];
    mesero::config::Config::from_toml(std::path::Path::new("config/mesero.toml"), &text, env)
        .expect("dev config loads")
}

/// A dev daemon with its HTTPS listener: the tests' API calls use plain
/// HTTP (`daemon.base`), the browsers HTTPS (`https`) with the daemon's
/// CA (`ca`) trusted in their NSS store.
struct App {
    daemon: TestDaemon,
    https: String,
    ca: std::path::PathBuf,
}

impl std::ops::Deref for App {
    type Target = TestDaemon;
    fn deref(&self) -> &TestDaemon {
        &self.daemon
    }
}

/// Where a stopped [`App`] listened, to start it again there.
struct Stopped {
    http: SocketAddr,
    tls: SocketAddr,
    https: String,
    ca: std::path::PathBuf,
}

impl App {
    async fn stop(self) -> Stopped {
        let stopped = Stopped {
            http: self.addr(),
            tls: self.daemon.daemon.https_addr().expect("https listening"),
            https: self.https,
            ca: self.ca,
        };
        self.daemon.stop().await;
        stopped
    }

    /// A chromedriver whose browsers trust this daemon's CA.
    fn driver(&self) -> Driver {
        Driver::start(&self.ca)
    }
}

/// The app's address as a browser opens it: HTTPS, as on a tablet (a
/// loopback `http://` URL would be a secure context anyway and hide a
/// certificate the browser refuses).
fn app_url(app: &App, path: &str) -> String {
    format!("{}{path}", app.https)
}

async fn start_daemon(dir: &std::path::Path) -> App {
    let (daemon, https, ca) = TestDaemon::start_tls(dev_config(dir, "127.0.0.1:0")).await;
    App { daemon, https, ca }
}

/// The same daemon again on the same two ports (its database and
/// certificates in `dir`), once the old one let go of them.
async fn restart_daemon(dir: &std::path::Path, old: Stopped) -> App {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let daemon = loop {
        let attempt = match tokio::net::TcpListener::bind(old.http).await {
            Ok(listener) => mesero::daemon::Daemon::start_at(
                dev_config(dir, &old.tls.to_string()),
                Some(listener),
                mesero::systemd::Supervision::none(),
                mesero::clock::Wall::system(),
            )
            .await
            .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("rebind {}: {e}", old.http)),
        };
        match attempt {
            Ok(daemon) => break daemon,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "restart: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(daemon.https_addr(), Some(old.tls), "the same HTTPS port");
    let mqtt = daemon.mqtt_addr().expect("mqtt");
    App {
        daemon: TestDaemon {
            base: format!("http://{}", daemon.http_addr()),
            daemon,
            mqtt,
        },
        https: old.https,
        ca: old.ca,
    }
}

async fn send(req: reqwest::RequestBuilder) -> Value {
    let res = req.send().await.expect("request");
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn set(daemon: &TestDaemon, table: i64, body: Value) {
    let (status, out) = put_state(&daemon.base, Some(STAFF_TOKEN), table, &body.to_string()).await;
    assert_eq!(status, 200, "{out}");
}

/// GET as staff (the dev config's tokens, not the fixture's).
async fn get(daemon: &TestDaemon, path: &str) -> Value {
    send(
        http()
            .get(format!("{}{path}", daemon.base))
            .bearer_auth(STAFF_TOKEN),
    )
    .await
}

async fn post(daemon: &TestDaemon, path: &str, body: Value) -> Value {
    send(
        http()
            .post(format!("{}/api/v1{path}", daemon.base))
            .bearer_auth(STAFF_TOKEN)
            .json(&body),
    )
    .await
}

/// Waits until the page shows `table` in `state`.
async fn wait_state(page: &Session, table: i64, state: &str) {
    let script = format!(
        "const t = document.querySelector('#plan .table[data-id=\"{table}\"]'); return t !== null && t.dataset.state === {state:?};"
    );
    page.wait(&format!("table {table} {state}"), &script).await;
}

async fn wait_live(page: &Session) {
    page.wait(
        "the badge en vivo",
        "const b = document.getElementById('live'); return b && b.dataset.status === 'live' && b.textContent.includes('en vivo');",
    )
    .await;
}

/// Test 1: the 12 dev tables with their labels, states and zones; the
/// service worker controls the page and Chromium finds it installable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_dev_floor_plan_and_is_an_installable_app() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    set(&daemon, 3, json!({"state": "occupied"})).await;
    set(&daemon, 5, json!({"state": "dirty"})).await;
    set(&daemon, 7, json!({"state": "reserved", "hold_minutes": 20})).await;
    let driver = daemon.driver();
    let page = driver.session(1280, 800).await;
    page.goto(&app_url(&daemon, &format!("/?token={ADMIN_TOKEN}")))
        .await;
    wait_live(&page).await;
    page.wait(
        "12 tables",
        "return document.querySelectorAll('#plan .table').length === 12;",
    )
    .await;

    let tables = get(&daemon, "/api/v1/tables").await;
    let shown = page
        .js(
            "return [...document.querySelectorAll('#plan .table')].map(t => ({id: Number(t.dataset.id), state: t.dataset.state, zone: t.dataset.zone, number: t.querySelector('.num').textContent, label: t.querySelector('.state').textContent.trim()}));",
            json!([]),
        )
        .await;
    let labels = [
        ("free", "disponible"),
        ("occupied", "ocupada"),
        ("reserved", "reservada"),
        ("dirty", "por limpiar"),
        ("unknown", "sin datos"),
    ];
    for t in tables.as_array().expect("tables") {
        let s = shown
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == t["id"]))
            .unwrap_or_else(|| panic!("table {} not on the page: {shown}", t["id"]));
        let state = t["state"].as_str().expect("state");
        // Table 12's sensor goes silent (unknown) on its own: the page
        // follows whatever the daemon says now.
        if t["id"] != 12 {
            assert_eq!(s["state"], t["state"], "{s} vs {t}");
        }
        assert_eq!(s["number"], t["number"], "{s}");
        assert_eq!(s["zone"], t["zone"], "{s}");
        let label = labels
            .iter()
            .find(|(k, _)| *k == s["state"])
            .expect("known state")
            .1;
        assert!(
            s["label"].as_str().is_some_and(|l| l.ends_with(label)),
            "table {} ({state}) shows {}",
            t["id"],
            s["label"]
        );
    }
    wait_state(&page, 3, "occupied").await;
    wait_state(&page, 12, "unknown").await;
    let unknown = page
        .js(
            "return document.querySelector('#plan .table[data-id=\"12\"]').textContent;",
            json!([]),
        )
        .await;
    assert!(
        unknown.as_str().is_some_and(|t| t.contains("sin datos")),
        "{unknown}"
    );
    let hold = page
        .js("const h = document.querySelector('#plan .table[data-id=\"7\"] .hold'); return h ? `${h.textContent} | ${h.title}` : null;", json!([]))
        .await;
    assert!(
        hold.as_str()
            .is_some_and(|h| h.contains(" min |") && h.contains("retenida hasta")),
        "{hold}"
    );

    // Zone tabs: all, salon, terrace; the terrace shows only its 4.
    let tabs = page
        .js(
            "return [...document.querySelectorAll('#zones .tab')].map(t => t.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(tabs, json!(["Todas", "salon", "terrace"]));
    page.click("#zones .tab[data-zone=terrace]").await;
    page.wait(
        "only the terrace",
        "const z = [...document.querySelectorAll('#plan .table')].map(t => t.dataset.zone); return z.length === 4 && z.every(x => x === 'terrace');",
    )
    .await;
    page.click("#zones .tab[data-zone='']").await;

    // Touch targets: no tile smaller than 44 px either way.
    let smallest = page
        .js("return Math.min(...[...document.querySelectorAll('#plan .table, button')].filter(b => b.offsetParent).map(b => Math.min(b.offsetWidth, b.offsetHeight)));", json!([]))
        .await;
    assert!(
        smallest.as_f64().is_some_and(|s| s >= 44.0),
        "smallest target {smallest}"
    );

    // Over HTTPS on a certificate of the daemon's CA, which the browser
    // trusts (no certificate-error flag): a secure context on an address
    // that is not loopback's exemption, so the service worker (it needs
    // one) registers and controls the page, and Chromium's own
    // installability check has nothing against it.
    let origin = page
        .js(
            "return [location.protocol, window.isSecureContext];",
            json!([]),
        )
        .await;
    assert_eq!(origin, json!(["https:", true]), "{origin}");
    page.wait(
        "a controlling service worker",
        "return navigator.serviceWorker.controller !== null && navigator.serviceWorker.controller.scriptURL.startsWith('https://');",
    )
    .await;
    let manifest = page.cdp("Page.getAppManifest", json!({})).await;
    assert!(
        manifest["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{manifest}"
    );
    let errors = page.cdp("Page.getInstallabilityErrors", json!({})).await;
    assert_eq!(errors["installabilityErrors"], json!([]), "{errors}");
    page.quit().await;
    daemon.stop().await;
}

/// Test 2: two browsers (separate contexts); a staff tap on table 3 in
/// the first shows "ocupada" in the second without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_in_one_browser_shows_in_another_without_a_reload() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let first = driver.session(1280, 800).await;
    let second = driver.session(1280, 800).await;
    first
        .goto(&app_url(&daemon, &format!("/?token={STAFF_TOKEN}")))
        .await;
    second.goto(&app_url(&daemon, "/?token=dev-viewer")).await;
    wait_live(&first).await;
    wait_live(&second).await;
    wait_state(&second, 3, "free").await;
    second.js("window.__noReload = true;", json!([])).await;

    first.click("#plan .table[data-id=\"3\"]").await;
    first
        .click("dialog[open] .state-btn[data-state=occupied]")
        .await;
    let tapped = std::time::Instant::now();
    wait_state(&second, 3, "occupied").await;
    let seen = tapped.elapsed();
    // Reported, not asserted (timings on a shared CI machine are not).
    eprintln!("browser: the second browser showed the tap after {seen:?}");
    let label = second
        .js(
            "return document.querySelector('#plan .table[data-id=\"3\"] .state').textContent;",
            json!([]),
        )
        .await;
    assert!(
        label.as_str().is_some_and(|l| l.contains("ocupada")),
        "{label}"
    );
    assert_eq!(
        second
            .js("return window.__noReload === true;", json!([]))
            .await,
        json!(true)
    );
    let events = get(&daemon, "/api/v1/events?type=table.state&table=3").await;
    assert_eq!(events["events"][0]["actor"], "staff:dev-staff", "{events}");
    first.quit().await;
    second.quit().await;
    daemon.stop().await;
}

/// Test 3: the daemon restarts under an open page: reconnecting, then
/// live with the right plan and no reload; while it is down past the
/// "sin conexión" threshold (shortened with ?offline_after=2 from 30 s),
/// the badge says so with the age of the last update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_survives_a_daemon_restart_and_says_when_it_is_offline() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let page = driver.session(1280, 800).await;
    page.goto(&app_url(
        &daemon,
        &format!("/?token={STAFF_TOKEN}&offline_after=2"),
    ))
    .await;
    wait_live(&page).await;
    set(&daemon, 4, json!({"state": "occupied"})).await;
    wait_state(&page, 4, "occupied").await;
    page.js("window.__noReload = true;", json!([])).await;

    let stopped = daemon.stop().await;
    page.wait(
        "the badge reconectando",
        "const b = document.getElementById('live'); return ['reconnecting', 'offline'].includes(b.dataset.status) && document.body.classList.contains('stale');",
    )
    .await;
    let offline = page
        .wait(
            "the badge sin conexión with an age",
            "const b = document.getElementById('live'); return b.dataset.status === 'offline' && /hace \\d+ s/.test(b.textContent) ? b.textContent : null;",
        )
        .await;
    assert!(
        offline.as_str().is_some_and(|t| t.contains("sin conexión")),
        "{offline}"
    );

    let daemon = restart_daemon(dir.path(), stopped).await;
    set(&daemon, 4, json!({"state": "free"})).await;
    set(&daemon, 6, json!({"state": "dirty"})).await;
    wait_live(&page).await;
    wait_state(&page, 4, "free").await;
    wait_state(&page, 6, "dirty").await;
    assert_eq!(
        page.js("return window.__noReload === true;", json!([]))
            .await,
        json!(true)
    );
    assert_eq!(
        page.js(
            "return document.body.classList.contains('stale');",
            json!([])
        )
        .await,
        json!(false)
    );

    // Opened afresh while the daemon is down (a tablet woken while the
    // Pi restarts): the service worker serves the app shell, which says
    // "sin conexión" rather than the browser's error page.
    let down = daemon.stop().await;
    page.goto(&format!(
        "{}/?token={STAFF_TOKEN}&offline_after=1",
        down.https
    ))
    .await;
    let shell = page
        .wait(
            "the app shell from the service worker, offline",
            "const b = document.getElementById('live'); return b && b.dataset.status === 'offline' ? b.textContent : null;",
        )
        .await;
    assert!(
        shell.as_str().is_some_and(|t| t.contains("sin conexión")),
        "{shell}"
    );
    page.quit().await;
}

/// Test 4: an urgent kitchen alert shows on /kitchen and on the floor,
/// rings on both, and goes from both when the kitchen acks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_kitchen_alert_rings_on_both_screens_and_one_ack_clears_both() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let kitchen = driver.session(1280, 800).await;
    let floor = driver.session(1280, 800).await;
    kitchen
        .goto(&app_url(&daemon, &format!("/kitchen?token={STAFF_TOKEN}")))
        .await;
    floor
        .goto(&app_url(&daemon, &format!("/?token={STAFF_TOKEN}")))
        .await;
    wait_live(&kitchen).await;
    wait_live(&floor).await;

    // A floor-only alert never reaches the kitchen screen.
    post(
        &daemon,
        "/alerts",
        json!({"kind": "call", "target": "floor", "table": 2}),
    )
    .await;
    let raised = post(
        &daemon,
        "/alerts",
        json!({"kind": "kitchen", "priority": "urgent", "target": "kitchen", "table": 5, "message": "Pase: mesa 5"}),
    )
    .await;
    let id = raised["alert"]["id"].as_i64().expect("alert id");
    let item = format!("li.alert[data-id=\"{id}\"]");
    let present = format!("return document.querySelector('{item}') !== null;");
    kitchen.wait("the alert on /kitchen", &present).await;
    floor.wait("the alert on the floor", &present).await;
    for page in [&kitchen, &floor] {
        page.wait(
            "a ring",
            "return Number(document.body.dataset.rings || 0) >= 1;",
        )
        .await;
    }
    let kitchen_items = kitchen
        .js(
            "return document.querySelectorAll('li.alert').length;",
            json!([]),
        )
        .await;
    assert_eq!(
        kitchen_items,
        json!(1),
        "only the kitchen alert on /kitchen"
    );

    kitchen.click(&format!("{item} button.ack")).await;
    let gone = format!("return document.querySelector('{item}') === null;");
    kitchen.wait("the alert gone from /kitchen", &gone).await;
    floor.wait("the alert gone from the floor", &gone).await;
    let all = get(&daemon, "/api/v1/alerts?all=true").await;
    let acked = all
        .as_array()
        .or_else(|| all["alerts"].as_array())
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(acked["acked_by"], "staff:dev-staff", "{all}");
    kitchen.quit().await;
    floor.quit().await;
    daemon.stop().await;
}

/// Test 5: a party added on the page gets "mesa lista" when a table
/// frees; seating it from the page occupies the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waitlist_party_gets_mesa_lista_and_seating_it_occupies_the_table() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    for table in 1..=11 {
        set(&daemon, table, json!({"state": "occupied"})).await;
    }
    let driver = daemon.driver();
    let page = driver.session(1280, 800).await;
    page.goto(&app_url(&daemon, &format!("/?token={STAFF_TOKEN}")))
        .await;
    wait_live(&page).await;
    wait_state(&page, 11, "occupied").await;

    page.click("[data-action=add-party]").await;
    page.type_into("dialog[open] input[name=name]", "García")
        .await;
    page.js(
        "const s = document.querySelector('dialog[open] input[name=party_size]'); s.value = '2';",
        json!([]),
    )
    .await;
    page.click("dialog[open] button[type=submit]").await;
    page.wait(
        "the party waiting with its quote",
        "const p = [...document.querySelectorAll('li.party')].find(li => li.textContent.includes('García')); return p && /espera ~\\d+–\\d+ min/.test(p.textContent);",
    )
    .await;

    set(&daemon, 4, json!({"state": "free"})).await;
    let ready = page
        .wait(
            "mesa lista",
            "const p = document.querySelector('li.party.ready'); return p ? p.textContent : null;",
        )
        .await;
    assert!(
        ready
            .as_str()
            .is_some_and(|t| t.contains("mesa lista") && t.contains("García")),
        "{ready}"
    );
    page.click("li.party.ready button[data-action=seat]").await;
    wait_state(&page, 4, "occupied").await;
    page.wait(
        "the party off the list",
        "return document.querySelector('li.party') === null;",
    )
    .await;
    let table = get(&daemon, "/api/v1/tables/4").await;
    assert_eq!(table["state"], "occupied", "{table}");
    page.quit().await;
    daemon.stop().await;
}

/// Test 6: the floor-plan editor moves a table by dragging it; another
/// page sees the new position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_moves_a_table_and_another_page_sees_it() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let editor = driver.session(1280, 800).await;
    let viewer = driver.session(1280, 800).await;
    editor
        .goto(&app_url(
            &daemon,
            &format!("/?token={ADMIN_TOKEN}#admin/editor"),
        ))
        .await;
    viewer.goto(&app_url(&daemon, "/?token=dev-viewer")).await;
    wait_live(&editor).await;
    wait_live(&viewer).await;
    let tile = ".edit-table[data-id=\"12\"]";
    editor.find(tile).await;
    let unit = editor
        .js("return parseFloat(document.querySelector('.editor-plan').style.getPropertyValue('--u'));", json!([]))
        .await
        .as_f64()
        .expect("unit");
    editor.drag(tile, (2.0 * unit).round() as i64, 0).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let t = get(&daemon, "/api/v1/tables/12").await;
        if t["x"] == json!(12.0) {
            assert_eq!(t["y"], json!(8.0), "{t}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "table 12 never moved: {t}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    viewer
        .wait(
            "table 12 at x=12 on the other page",
            "const t = document.querySelector('#plan .table[data-id=\"12\"]'); return t && t.dataset.x === '12';",
        )
        .await;
    let events = get(&daemon, "/api/v1/events?type=table.updated&table=12").await;
    assert_eq!(events["events"][0]["actor"], "staff:dev-admin", "{events}");

    // The rest of the admin views: the event monitor with its actor
    // filter, the sensor list, and analytics (a note while the daemon has
    // none).
    editor
        .js("location.hash = '#admin/monitor';", json!([]))
        .await;
    editor
        .wait(
            "the move in the event monitor",
            "return [...document.querySelectorAll('#admin-monitor .monitor li')].some(li => li.textContent.includes('table.updated'));",
        )
        .await;
    editor
        .type_into("#admin-monitor input[name=actor]", "staff:dev-admin")
        .await;
    editor
        .wait(
            "only dev-admin's events",
            "const li = [...document.querySelectorAll('#admin-monitor .monitor li')]; return li.length > 0 && li.every(x => x.textContent.includes('staff:dev-admin'));",
        )
        .await;
    editor
        .js("location.hash = '#admin/sensors';", json!([]))
        .await;
    editor
        .wait(
            "the sensor list",
            "return document.querySelector('#admin-sensors li.sensor[data-id=\"node-12\"]') !== null;",
        )
        .await;
    editor
        .js("location.hash = '#admin/analytics';", json!([]))
        .await;
    editor
        .wait(
            "analytics or its note",
            "return document.querySelector('#admin-analytics .card, #admin-analytics .empty') !== null;",
        )
        .await;
    // The charts, on data of the analytics contract's shapes (the daemon
    // here has no analytics yet): a 7x24 heat map, bars with a p80, and
    // lines with a gap where a day has no number.
    let drawn = editor
        .js(
            "return import('/app/charts.js').then(c => { \
               const cells = [...Array(7)].map((_, d) => [...Array(24)].map((_, h) => h < 12 ? null : (d + h) % 10 / 10)); \
               const heat = c.heatmap(cells, ['l','m','x','j','v','s','d'], [...Array(24).keys()], 'u'); \
               const bars = c.bars([{label: '2 pers.', value: 48, extra: 61}, {label: '4 pers.', value: null}], 'b', ' min'); \
               const lines = c.lines([{cls: 'a', values: [5, null, 6]}, {cls: 'b', values: [12, 14, 11]}], ['11-28', '11-29', '11-30'], 'q'); \
               return [heat.querySelectorAll('rect.heat').length, heat.querySelectorAll('rect.nodata').length, \
                       bars.querySelectorAll('rect.bar').length, bars.querySelectorAll('rect.bar2').length, \
                       [...lines.querySelectorAll('path.line')].map(p => p.getAttribute('d').split('M').length - 1)]; });",
            json!([]),
        )
        .await;
    assert_eq!(drawn, json!([84, 84, 1, 1, [2, 1]]), "{drawn}");
    editor.quit().await;
    viewer.quit().await;
    daemon.stop().await;
}

/// The host stand's reservations: one created on the page for a few
/// minutes from now holds its table, and checking it in by its typed
/// code seats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_made_on_the_page_is_checked_in_by_its_code() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let page = driver.session(1280, 800).await;
    page.goto(&app_url(
        &daemon,
        &format!("/?token={STAFF_TOKEN}#reservations"),
    ))
    .await;
    wait_live(&page).await;
    // Five minutes from now, in the site's zone; the form books today.
    let at = page
        .js(
            "const d = new Date(Date.now() + 5 * 60000); const f = new Intl.DateTimeFormat('en-GB', {timeZone: 'Europe/Madrid', hour: '2-digit', minute: '2-digit', hour12: false}); const n = new Intl.DateTimeFormat('en-GB', {timeZone: 'Europe/Madrid', hour: '2-digit', hour12: false}); return Number(n.format(new Date())) <= Number(n.format(d)) ? f.format(d) : null;",
            json!([]),
        )
        .await;
    let Some(at) = at.as_str().map(str::to_string) else {
        eprintln!(
            "browser: the reservation test runs at any time but the five minutes before local midnight; skipped now"
        );
        return;
    };
    page.click("[data-action=new-reservation]").await;
    page.type_into("dialog[open] input[name=name]", "López")
        .await;
    page.js(
        "const f = document.querySelector('dialog[open] form'); f.party_size.value = '2'; f.at.value = arguments[0]; f.table.value = '3';",
        json!([at]),
    )
    .await;
    page.click("dialog[open] button[type=submit]").await;
    let code = page
        .wait(
            "the reservation in today's list",
            "const li = [...document.querySelectorAll('li.reservation')].find(x => x.textContent.includes('López')); return li ? li.dataset.code : null;",
        )
        .await;
    let code = code.as_str().expect("code").to_string();
    page.js("location.hash = '#floor';", json!([])).await;
    wait_state(&page, 3, "reserved").await;
    page.wait(
        "the reservation due on table 3",
        "return document.querySelector('#plan .table[data-id=\"3\"] .res-due') !== null;",
    )
    .await;

    page.js("location.hash = '#reservations';", json!([])).await;
    page.click("[data-action=check-in]").await;
    page.type_into("dialog[open] input[name=code]", &code).await;
    page.click("dialog[open] button[type=submit]").await;
    page.wait(
        "the reservation seated",
        "return [...document.querySelectorAll('li.reservation.seated')].some(x => x.textContent.includes('López'));",
    )
    .await;
    let table = get(&daemon, "/api/v1/tables/3").await;
    assert_eq!(table["state"], "occupied", "{table}");
    page.quit().await;
    daemon.stop().await;
}

/// Pairing (issue 14): the admin page's Tablets panel makes a pairing
/// (its QR code and the HTTPS pair URL); a fresh browser opens that URL,
/// keeps the token and works with the paired role and name; revoked on the
/// admin page, the tablet's page says it has no access and asks for a
/// token. The Certificate panel shows the CA's QR code and fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_paired_from_the_admin_page_works_until_it_is_revoked() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    let driver = daemon.driver();
    let admin = driver.session(1280, 800).await;
    let tablet = driver.session(1280, 800).await;
    admin
        .goto(&app_url(
            &daemon,
            &format!("/?token={ADMIN_TOKEN}#admin/tablets"),
        ))
        .await;
    admin
        .type_into("#admin-tablets input[name=name]", "tableta-barra")
        .await;
    admin.click("#admin-tablets [data-action=pair]").await;
    let url = admin
        .wait(
            "the pair URL and its QR code",
            "const a = document.querySelector('#admin-tablets a.pair-url'); const q = document.querySelector('#admin-tablets img.qr'); return a && q && q.complete && q.naturalWidth > 0 ? a.href : null;",
        )
        .await;
    let url = url.as_str().expect("pair url").to_string();
    // The URL names the Pi's LAN address for the tablet; the test daemon
    // listens on loopback, so the tablet here opens the same path there.
    let port = daemon.https.rsplit(':').next().expect("port");
    let (host, path) = url
        .strip_prefix("https://")
        .and_then(|u| u.split_once('/'))
        .unwrap_or_else(|| panic!("not an https URL: {url}"));
    assert!(host.ends_with(&format!(":{port}")), "{url}");
    assert!(path.starts_with("pair?code="), "{url}");
    admin
        .wait(
            "the pending tablet in the list",
            "return document.querySelector('#admin-tablets li.pairing[data-status=pending]')?.textContent.includes('tableta-barra');",
        )
        .await;

    tablet.goto(&format!("{}/{path}", daemon.https)).await;
    let done = tablet
        .wait(
            "the device paired",
            "return document.getElementById('open').hidden ? null : [document.getElementById('message').textContent, localStorage.getItem('mesero.token'), location.search];",
        )
        .await;
    assert!(
        done[0]
            .as_str()
            .is_some_and(|m| m.contains("tableta-barra") && m.contains("staff")),
        "{done}"
    );
    let token = done[1].as_str().expect("a kept token").to_string();
    assert!(token.len() >= 20, "{done}");
    assert_eq!(done[2], "", "the used code is out of the address bar");
    tablet.click("#open").await;
    wait_live(&tablet).await;
    tablet.click("#plan .table[data-id=\"3\"]").await;
    tablet
        .click("dialog[open] .state-btn[data-state=occupied]")
        .await;
    wait_state(&tablet, 3, "occupied").await;
    let events = get(&daemon, "/api/v1/events?type=table.state&table=3").await;
    assert_eq!(
        events["events"][0]["actor"], "staff:tableta-barra",
        "{events}"
    );
    admin
        .js("location.hash = '#admin/editor';", json!([]))
        .await;
    admin
        .js("location.hash = '#admin/tablets';", json!([]))
        .await;
    admin
        .wait(
            "the paired tablet in the list",
            "return document.querySelector('#admin-tablets li.pairing[data-status=paired]')?.textContent.includes('tableta-barra');",
        )
        .await;
    admin
        .wait(
            "the used code marked",
            "return document.querySelector('#admin-tablets .pair-result .card.used') !== null;",
        )
        .await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    admin.screenshot(&shots.join("admin.png")).await;

    // Revoked from the admin page: the open stream is closed, the page
    // says "sin permiso" and asks for a token; the token is refused.
    admin.js("window.confirm = () => true;", json!([])).await;
    admin
        .click("#admin-tablets li.pairing[data-status=paired] [data-action=revoke]")
        .await;
    admin
        .wait(
            "the tablet gone from the list",
            "return document.querySelector('#admin-tablets li.pairing') === null;",
        )
        .await;
    let denied = tablet
        .wait(
            "the badge sin permiso and the token prompt",
            "const b = document.getElementById('live'); return b.dataset.status === 'denied' && document.querySelector('dialog[open] input[name=token]') !== null ? [b.textContent, document.body.dataset.lastMessage] : null;",
        )
        .await;
    assert!(
        denied[0]
            .as_str()
            .is_some_and(|b| b.contains("sin permiso")),
        "{denied}"
    );
    assert!(
        denied[1].as_str().is_some_and(|m| m.contains("revocada")),
        "{denied}"
    );
    let (status, _) = put_state(&daemon.base, Some(&token), 3, r#"{"state":"free"}"#).await;
    assert_eq!(status, 401, "a revoked token is refused");

    // The Certificate panel: the CA's QR code, fingerprint and addresses.
    admin
        .js("location.hash = '#admin/certificate';", json!([]))
        .await;
    let fingerprint = admin
        .wait(
            "the CA's QR code and fingerprint",
            "const q = document.querySelector('#admin-certificate img.qr'); const f = document.querySelector('#admin-certificate .fingerprint'); return q && q.complete && q.naturalWidth > 0 && f ? f.textContent : null;",
        )
        .await;
    let tls = send(
        http()
            .get(format!("{}/api/v1/tls", daemon.base))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(fingerprint, tls["ca"]["fingerprint_sha256"], "{tls}");
    admin
        .click("#admin-certificate [data-action=install-steps]")
        .await;
    admin
        .wait(
            "the install steps",
            "return document.getElementById('install-steps').open && document.querySelectorAll('#install-steps li').length >= 6;",
        )
        .await;
    admin.screenshot(&shots.join("admin-certificate.png")).await;
    admin.quit().await;
    tablet.quit().await;
    daemon.stop().await;
}

/// Test 7: screenshots of a busy evening at 1280x800 (tablet), 390x844
/// (phone, no sideways scrolling) and of /kitchen, written to
/// docs/screenshots/ for the README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_tablet_the_phone_and_the_kitchen() {
    if !webdriver::available() {
        return;
    }
    let _one = SUITE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path()).await;
    for (table, body) in [
        (1, json!({"state": "occupied", "party_size": 3})),
        (2, json!({"state": "occupied", "hold_minutes": 30})),
        (5, json!({"state": "dirty"})),
        (6, json!({"state": "occupied"})),
        (8, json!({"state": "reserved", "hold_minutes": 20})),
        (9, json!({"state": "occupied"})),
        (10, json!({"state": "occupied"})),
        (11, json!({"state": "occupied"})),
    ] {
        let (status, out) =
            put_state(&daemon.base, Some(STAFF_TOKEN), table, &body.to_string()).await;
        if status == 400 && body.get("party_size").is_some() {
            // Until PUT state takes party_size (issue 13's visits).
            set(&daemon, table, json!({"state": "occupied"})).await;
        } else {
            assert_eq!(status, 200, "{out}");
        }
    }
    post(&daemon, "/alerts", json!({"kind": "kitchen", "priority": "urgent", "target": "kitchen", "table": 6, "message": "Pase: mesa 6, dos principales"})).await;
    post(&daemon, "/alerts", json!({"kind": "kitchen", "priority": "normal", "target": "kitchen", "message": "Falta pan en sala"})).await;
    post(
        &daemon,
        "/alerts",
        json!({"kind": "bill", "priority": "high", "target": "floor", "table": 9}),
    )
    .await;
    post(
        &daemon,
        "/alerts",
        json!({"kind": "call", "target": "floor", "table": 1}),
    )
    .await;
    post(
        &daemon,
        "/waitlist",
        json!({"name": "Martínez", "party_size": 6, "quoted_minutes": 25}),
    )
    .await;
    post(
        &daemon,
        "/waitlist",
        json!({"name": "Ana", "party_size": 2}),
    )
    .await;

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let driver = daemon.driver();
    for (name, width, height, path) in [
        ("tablet", 1280, 800, "/"),
        ("phone", 390, 844, "/"),
        ("kitchen", 1280, 800, "/kitchen"),
    ] {
        let page = driver.session(width, height).await;
        page.goto(&app_url(&daemon, &format!("{path}?token={STAFF_TOKEN}")))
            .await;
        wait_live(&page).await;
        if path == "/" {
            wait_state(&page, 12, "unknown").await;
            page.wait(
                "the waitlist",
                "return document.querySelectorAll('li.party').length === 2;",
            )
            .await;
            let scroll = page
                .js(
                    "return document.documentElement.scrollWidth - window.innerWidth;",
                    json!([]),
                )
                .await;
            assert!(
                scroll.as_f64().is_some_and(|s| s <= 0.0),
                "{name}: {scroll} px of sideways scroll"
            );
            let overflow = page
                .js("const r = [...document.querySelectorAll('#plan .table')].map(t => t.getBoundingClientRect().right); return Math.max(...r) - window.innerWidth;", json!([]))
                .await;
            assert!(
                overflow.as_f64().is_some_and(|s| s <= 0.0),
                "{name}: the plan is {overflow} px too wide"
            );
        } else {
            page.wait(
                "two kitchen alerts",
                "return document.querySelectorAll('li.alert').length === 2;",
            )
            .await;
        }
        page.js("return document.fonts.ready.then(() => true);", json!([]))
            .await;
        page.screenshot(&shots.join(format!("{name}.png"))).await;
        page.quit().await;
    }
    daemon.stop().await;
}
