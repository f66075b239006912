//! Visits, analytics and the owner report (issue 13), on the real daemon,
//! a real SQLite file, real HTTP and the real `mesero` binary:
//! - a scripted evening (a sensor seating with a restroom break shorter
//!   than `release_after`, a staff seating with an unknown gap, a waitlist
//!   party on a combination) gives exactly its visits, and `mesero db
//!   rebuild-visits` gives the same rows again;
//! - `mesero db import-visits` imports nothing from a file with a bad row
//!   and names its line, and the rest with `--skip-bad`;
//! - `GET /api/v1/analytics` on a small known history has the numbers
//!   worked out by hand, its CSV tables and `visits.csv` agree, bad dates
//!   are a 422 naming the field;
//! - `mesero report` writes one self-contained HTML file with its charts;
//! - `mesero db purge-guests` blanks names and phones of past guests in
//!   their rows and in the stored events, and keeps upcoming ones.

mod common;

use common::*;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Friday 27 November 2026, 19:00 UTC: the evening's start.
fn t0() -> SystemTime {
    mesero::clock::parse("2026-11-27T19:00:00Z").expect("time")
}

fn at(seconds: u64) -> String {
    mesero::clock::format(t0() + Duration::from_secs(seconds))
}

/// The fixture with tables 1 and 2 joinable, a scripted sensor on table 3,
/// UTC, occupy after 10 s, release after 60 s; also written to
/// `dir/mesero.toml` for the binary.
fn evening_config(dir: &Path) -> (mesero::config::Config, PathBuf) {
    let text = FIXTURE
        .replacen(
            "[[tables]]\nid = 1\n",
            "[[tables]]\nid = 1\njoins = [2]\n",
            1,
        )
        .replacen(
            "[[tables]]\nid = 2\n",
            "[[tables]]\nid = 2\njoins = [1]\n",
            1,
        )
        + r#"
[[sensors]]
id = "sim-3"
kind = "sim"
table = 3
script = [["0s", false], ["5s", true, 2], ["20s", false, 0], ["40s", true, 2], ["50s", false, 0]]
"#;
    assert!(text.contains("joins = [2]") && text.contains("joins = [1]"));
    let file = dir.join("mesero.toml");
    std::fs::write(&file, &text).expect("write config");
    let env = [
        ("MESERO_STORAGE_PATH", db_path(dir).display().to_string()),
        ("MESERO_SITE_TIMEZONE", "UTC".to_string()),
        ("MESERO_OCCUPANCY_OCCUPY_AFTER", "10s".into()),
        ("MESERO_OCCUPANCY_RELEASE_AFTER", "60s".into()),
        ("MESERO_HTTP_HEARTBEAT", "1h".into()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let config = mesero::config::Config::from_toml(&file, &text, env).expect("config");
    (config, file)
}

/// `mesero <args> --config <file>` on the database in `dir`.
fn mesero(dir: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("MESERO_CONFIG")
        .env("MESERO_STORAGE_PATH", db_path(dir))
        .env("MESERO_SITE_TIMEZONE", "UTC")
        .output()
        .expect("run mesero")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The visits as stored: (tables, party_size, source, seated_at, left_at,
/// origin), in seated order.
type Row = (
    String,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    String,
);

fn stored_visits(dir: &Path) -> Vec<Row> {
    let conn = Connection::open(db_path(dir)).expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT tables, party_size, party_size_source, seated_at, left_at, origin
               FROM visits ORDER BY seated_at, id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Keeps tokio's paused clock from auto-advancing while it lives (as in
/// tests/sensors.rs): time moves only when the test moves it.
struct Frozen(Option<std::sync::mpsc::Sender<()>>);

impl Drop for Frozen {
    fn drop(&mut self) {
        self.0.take();
    }
}

fn freeze() -> Frozen {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    Frozen(Some(tx))
}

/// Returns once every change queued before it is committed.
async fn barrier(base: &str) {
    let res = http()
        .patch(format!("{base}/api/v1/tables/4"))
        .bearer_auth(ADMIN)
        .json(&json!({ "zone": "terrace" }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 200, "barrier PATCH");
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let res = http()
        .post(format!("{base}{path}"))
        .bearer_auth(STAFF)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(start_paused = true)]
async fn a_scripted_evening_gives_exactly_its_visits_and_a_rebuild_the_same() {
    let _frozen = freeze();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = evening_config(dir.path());
    let wall = mesero::clock::Wall::manual(t0());
    let d = TestDaemon::start_at(config, wall.clone()).await;
    let base = d.base.clone();

    // A party size is 1..=1000 and only for an occupied table.
    let (status, body) = put_state(
        &base,
        Some(STAFF),
        4,
        r#"{"state":"occupied","party_size":0}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("party_size"),
        "{body}"
    );
    let (status, _) = put_state(&base, Some(STAFF), 4, r#"{"state":"free","party_size":2}"#).await;
    assert_eq!(status, 422);

    let mut party = None;
    for second in 0..=130u64 {
        if second > 0 {
            wall.advance(Duration::from_secs(1));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let staff = |body: &'static str, table: i64| {
            let base = base.clone();
            async move {
                let (status, json) = put_state(&base, Some(STAFF), table, body).await;
                assert_eq!(status, 200, "{json}");
            }
        };
        match second {
            // Table 4: seated by staff for 3, its sensors lose it for a
            // while (unknown ends no visit), bussed at 70 s.
            20 => staff(r#"{"state":"occupied","party_size":3}"#, 4).await,
            30 => staff(r#"{"state":"unknown"}"#, 4).await,
            45 => staff(r#"{"state":"occupied"}"#, 4).await,
            70 => staff(r#"{"state":"dirty"}"#, 4).await,
            // A party of 6 from the waitlist on the combination 1+2.
            60 => {
                let (status, p) = post(
                    &base,
                    "/api/v1/waitlist",
                    json!({"name": "Ana", "party_size": 6}),
                )
                .await;
                assert_eq!(status, 201, "{p}");
                let id = p["party"]["id"]
                    .as_i64()
                    .or(p["id"].as_i64())
                    .expect("party id");
                let (status, seated) = post(
                    &base,
                    &format!("/api/v1/waitlist/{id}/seat"),
                    json!({"tables": [1, 2]}),
                )
                .await;
                assert_eq!(status, 200, "{seated}");
                party = Some(id);
            }
            120 => staff(r#"{"state":"free"}"#, 1).await,
            125 => staff(r#"{"state":"free"}"#, 2).await,
            _ => {}
        }
        barrier(&base).await;
    }
    assert!(party.is_some());
    // Table 3's guest was away 20 s..40 s, less than release_after: one
    // visit from 15 s (occupy_after) to 110 s (50 s + release_after).
    let expected: Vec<Row> = vec![
        (
            "[3]".into(),
            Some(2),
            Some("sensor".into()),
            at(15),
            Some(at(110)),
            "sensor".into(),
        ),
        (
            "[4]".into(),
            Some(3),
            Some("staff".into()),
            at(20),
            Some(at(70)),
            "staff".into(),
        ),
        (
            "[1,2]".into(),
            Some(6),
            Some("waitlist".into()),
            at(60),
            Some(at(125)),
            "waitlist".into(),
        ),
    ];
    assert_eq!(stored_visits(dir.path()), expected);

    // The same through the export (local times, here UTC).
    let csv = http()
        .get(format!(
            "{base}/api/v1/visits.csv?from=2026-11-27&to=2026-11-27"
        ))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("GET csv");
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "table,party_size,seated_at,left_at,minutes,origin,party_size_source"
    );
    assert_eq!(
        lines[1],
        "3,2,2026-11-27T19:00:15+00:00,2026-11-27T19:01:50+00:00,1.583,sensor,sensor"
    );
    assert_eq!(
        lines[3],
        "1+2,6,2026-11-27T19:01:00+00:00,2026-11-27T19:02:05+00:00,1.083,waitlist,waitlist"
    );
    d.stop().await;

    // Rebuilt from the log by the binary: the same rows.
    let out = mesero(dir.path(), &file, &["db", "rebuild-visits"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 visits derived"));
    assert_eq!(stored_visits(dir.path()), expected);
}

const GOOD_ROWS: &str = "table,party_size,seated_at,left_at
1,2,2026-11-23 19:00,2026-11-23 20:00
2,4,2026-11-23 20:00,2026-11-23 21:30
1+2,6,2026-11-24 21:00,2026-11-24 22:00
3,2,2026-11-25T19:30:00+00:00,2026-11-25T20:10:00Z
";

#[tokio::test]
async fn an_import_with_a_bad_row_imports_nothing_and_names_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file) = evening_config(dir.path());
    // Line 7: left_at before seated_at.
    let csv = format!(
        "{GOOD_ROWS}4,2,2026-11-25 21:00,2026-11-25 22:00\n4,3,2026-11-26 21:00,2026-11-26 20:00\n"
    );
    assert_eq!(csv.lines().nth(6).map(|l| l.starts_with("4,3")), Some(true));
    let path = dir.path().join("old.csv");
    std::fs::write(&path, &csv).expect("write csv");
    let csv_arg = path.display().to_string();

    let out = mesero(dir.path(), &file, &["db", "import-visits", &csv_arg]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("line 7: left_at (2026-11-26 20:00) is before seated_at"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(stored_visits(dir.path()).is_empty());

    let out = mesero(
        dir.path(),
        &file,
        &["db", "import-visits", &csv_arg, "--skip-bad"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 7:"));
    let rows = stored_visits(dir.path());
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0],
        (
            "[1]".into(),
            Some(2),
            Some("import".into()),
            "2026-11-23T19:00:00.000Z".into(),
            Some("2026-11-23T20:00:00.000Z".into()),
            "import".into()
        )
    );
    assert_eq!(rows[2].0, "[1,2]");

    // A rebuild keeps imported visits.
    let out = mesero(dir.path(), &file, &["db", "rebuild-visits"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored_visits(dir.path()).len(), 5);
}

/// Imports the known history: four visits over 23–25 November (UTC):
/// table 1 for 60 min (party 2), table 2 for 90 min (4), tables 1+2 for
/// 60 min (6), table 3 for 40 min (2).
fn import_known(dir: &Path, file: &Path) {
    let path = dir.join("known.csv");
    std::fs::write(&path, GOOD_ROWS).expect("write csv");
    let out = mesero(
        dir,
        file,
        &["db", "import-visits", &path.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

async fn get(base: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn analytics_on_a_known_history_have_the_numbers_worked_out_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = evening_config(dir.path());
    import_known(dir.path(), &file);
    let wall = mesero::clock::Wall::manual(t0());
    let d = TestDaemon::start_at(config, wall).await;
    let res = get(&d.base, "/api/v1/analytics?from=2026-11-23&to=2026-11-26").await;
    assert_eq!(res.status(), 200);
    let a: Value = res.json().await.expect("json");
    assert_eq!(a["from"], "2026-11-23");
    assert_eq!(a["to"], "2026-11-26");
    assert_eq!(a["timezone"], "UTC");
    // Monday 23rd 19:00: table 1 the whole hour, of 4 tables = 0.25;
    // 20:00: table 2 = 0.25; 21:00: table 2 half the hour = 0.125.
    let cells = &a["utilization"]["cells"];
    assert_eq!(cells[0][19], 0.25);
    assert_eq!(cells[0][20], 0.25);
    assert_eq!(cells[0][21], 0.125);
    assert_eq!(cells[0][3], 0.0);
    // Tuesday 21:00: tables 1 and 2 = 0.5. Wednesday 19:00: table 3 for
    // 30 min = 0.125; 20:00 for 10 min = 1/24.
    assert_eq!(cells[1][21], 0.5);
    assert_eq!(cells[2][19], 0.125);
    assert!((cells[2][20].as_f64().expect("cell") - 1.0 / 24.0).abs() < 1e-9);
    // The range has no Friday to Sunday: no data.
    assert!(cells[4][20].is_null() && cells[6][0].is_null());
    assert_eq!(
        a["turns_per_table"],
        json!([
            {"table": 1, "turns": 2, "median_minutes": 60.0},
            {"table": 2, "turns": 2, "median_minutes": 75.0},
            {"table": 3, "turns": 1, "median_minutes": 40.0},
            {"table": 4, "turns": 0, "median_minutes": null},
        ])
    );
    // Party of 2: 60 and 40 min: median 50, P80 40 + 0.8 × 20 = 56.
    assert_eq!(
        a["turn_time_by_party_size"],
        json!([
            {"party_size": 2, "visits": 2, "median_minutes": 50.0, "p80_minutes": 56.0},
            {"party_size": 4, "visits": 1, "median_minutes": 90.0, "p80_minutes": 90.0},
            {"party_size": 6, "visits": 1, "median_minutes": 60.0, "p80_minutes": 60.0},
        ])
    );
    assert_eq!(
        a["covers"],
        json!({"total": 14, "by_day": [
            {"date": "2026-11-23", "covers": 6, "visits": 2},
            {"date": "2026-11-24", "covers": 6, "visits": 1},
            {"date": "2026-11-25", "covers": 2, "visits": 1},
            {"date": "2026-11-26", "covers": 0, "visits": 0},
        ]})
    );
    assert_eq!(
        a["no_shows"],
        json!({"reservations": 0, "no_shows": 0, "rate": null})
    );
    assert_eq!(
        a["walk_aways"],
        json!({"parties": 0, "left": 0, "rate": null})
    );
    assert_eq!(
        a["alert_ack_seconds"],
        json!({"acked": 0, "p50": null, "p90": null})
    );
    // The log starts at the daemon's start (27th), after the range.
    assert_eq!(
        a["sensor_uptime"],
        json!([{"sensor": "sim-3", "uptime": null}])
    );

    let csv = get(
        &d.base,
        "/api/v1/analytics/turn_time_by_party_size.csv?from=2026-11-23&to=2026-11-26",
    )
    .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.text().await.expect("csv"),
        "party_size,visits,median_minutes,p80_minutes\r\n2,2,50,56\r\n4,1,90,90\r\n6,1,60,60\r\n"
    );
    let covers = get(
        &d.base,
        "/api/v1/analytics/covers.csv?from=2026-11-23&to=2026-11-24",
    )
    .await;
    assert_eq!(
        covers.text().await.expect("csv"),
        "date,covers,visits\r\n2026-11-23,6,2\r\n2026-11-24,6,1\r\n"
    );
    let util = get(
        &d.base,
        "/api/v1/analytics/utilization.csv?from=2026-11-23&to=2026-11-23",
    )
    .await;
    let util = util.text().await.expect("csv");
    assert!(util.starts_with("weekday,00,01,"), "{util}");
    assert!(util.contains("\r\nmon,0,0,"), "{util}");
    let turns = get(
        &d.base,
        "/api/v1/analytics/turns_per_table.csv?from=2026-11-23&to=2026-11-26",
    )
    .await;
    assert!(turns.text().await.expect("csv").contains("\r\n4,0,\r\n"));

    // Bad ranges: 422 naming the field.
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-11-26&to=2026-11-23", "from"),
        ("from=2024-01-01&to=2026-01-01", "to"),
    ] {
        let res = get(&d.base, &format!("/api/v1/analytics?{query}")).await;
        assert_eq!(res.status(), 422, "{query}");
        let body: Value = res.json().await.expect("json");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(&format!("{field}:")), "{query}: {body}");
    }
    let res = get(&d.base, "/api/v1/visits.csv?from=2026-02-30").await;
    assert_eq!(res.status(), 422);
    // Staff only.
    let res = http()
        .get(format!("{}/api/v1/analytics", d.base))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 403);
    d.stop().await;
}

#[tokio::test]
async fn the_report_is_one_self_contained_html_file_with_its_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file) = evening_config(dir.path());
    import_known(dir.path(), &file);
    let out_file = dir.path().join("report.html");
    let out = mesero(
        dir.path(),
        &file,
        &[
            "report",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-26",
            "--out",
            &out_file.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&out_file).expect("report");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"es\">"), "Spanish by default");
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
    for id in [
        "utilization",
        "turns_per_table",
        "turn_time_by_party_size",
        "covers",
        "rates",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    assert_eq!(html.matches("<svg").count(), 5);
    // 7 × 24 heatmap cells, then one bar per table, party size, day.
    assert_eq!(html.matches("<rect").count(), 7 * 24 + 4 + 3 + 4 + 2 * 3);
    assert!(html.contains("Ocupación por hora y día"));
    assert!(html.contains(">14</b>"), "14 covers");
    assert!(html.contains("1 rotación ·") && html.contains("2 rotaciones ·"));
    assert!(html.contains("· 1 visita<"), "singular");
    assert!(html.contains("mediana 50 min · P80 56 min"), "party of 2");
    // Nothing to fetch: no script, no external reference.
    for needle in ["<script", "http://", "https://", "src=", "<link"] {
        let outside_svg_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!outside_svg_ns.contains(needle), "{needle}");
    }
    if std::env::var_os("MESERO_REPORT_OUT").is_some() {
        let to = PathBuf::from(std::env::var_os("MESERO_REPORT_OUT").unwrap_or_default());
        std::fs::copy(&out_file, to).expect("copy report");
    }

    // English with site.language = "en"; a bad date names the flag.
    let en = Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args([
            "report",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-26",
            "--out",
        ])
        .arg(dir.path().join("en.html"))
        .arg("--config")
        .arg(&file)
        .env_remove("MESERO_CONFIG")
        .env("MESERO_STORAGE_PATH", db_path(dir.path()))
        .env("MESERO_SITE_LANGUAGE", "en")
        .output()
        .expect("run");
    assert!(en.status.success(), "{}", stderr(&en));
    let en = std::fs::read_to_string(dir.path().join("en.html")).expect("report");
    assert!(en.contains("Turns per table") && en.contains("<html lang=\"en\">"));
    let bad = mesero(
        dir.path(),
        &file,
        &["report", "--from", "23/11", "--out", "x.html"],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--from"), "{}", stderr(&bad));
}

#[tokio::test]
async fn purge_guests_blanks_past_names_and_phones_everywhere_and_keeps_upcoming_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = evening_config(dir.path());
    let wall = mesero::clock::Wall::manual(t0());
    let d = TestDaemon::start_at(config, wall.clone()).await;
    let (status, past) = post(
        &d.base,
        "/api/v1/reservations",
        json!({"name": "Garcia", "phone": "+34 600 111 222", "notes": "window", "party_size": 2,
               "at": "2026-11-28T20:00", "table": 1}),
    )
    .await;
    assert_eq!(status, 201, "{past}");
    let (status, upcoming) = post(
        &d.base,
        "/api/v1/reservations",
        json!({"name": "Lopez", "phone": "+34 600 333 444", "party_size": 2,
               "at": "2026-12-05T20:00", "table": 2}),
    )
    .await;
    assert_eq!(status, 201, "{upcoming}");
    let past_id = past["id"].as_i64().expect("id");
    let res = http()
        .delete(format!("{}/api/v1/reservations/{past_id}", d.base))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 200);
    let (status, p) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "Marta", "party_size": 3, "phone": "+34 600 555 666"}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let pid = p["party"]["id"]
        .as_i64()
        .or(p["id"].as_i64())
        .expect("party id");
    let res = http()
        .delete(format!("{}/api/v1/waitlist/{pid}", d.base))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("DELETE");
    assert!(res.status().is_success());
    d.stop().await;

    let out = mesero(
        dir.path(),
        &file,
        &["db", "purge-guests", "--before", "2026-12-01"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from 2 reservations"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let conn = Connection::open(db_path(dir.path())).expect("open");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    for secret in ["Garcia", "600 111 222", "window", "Marta", "600 555 666"] {
        let like = format!("%{secret}%");
        let n: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM events WHERE data LIKE ?1)
                      + (SELECT count(*) FROM reservations WHERE name LIKE ?1 OR phone LIKE ?1 OR notes LIKE ?1)
                      + (SELECT count(*) FROM waitlist WHERE data LIKE ?1)",
                [&like],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 0, "{secret} is still stored");
    }
    // The rows stay (for the analytics) and the upcoming guest keeps hers.
    assert_eq!(count("SELECT count(*) FROM reservations"), 2);
    assert_eq!(
        count("SELECT count(*) FROM waitlist WHERE json_extract(data, '$.party_size') = 3"),
        1
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM reservations WHERE name = 'Lopez' AND phone = '+34 600 333 444'"
        ),
        1
    );
    assert!(count("SELECT count(*) FROM events WHERE data LIKE '%Lopez%'") >= 1);
    // A bad date names the flag.
    let bad = mesero(
        dir.path(),
        &file,
        &["db", "purge-guests", "--before", "soon"],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--before"), "{}", stderr(&bad));
}
