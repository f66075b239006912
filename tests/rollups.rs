//! Hourly analytics rollups for the upstream bridge (issue 15,
//! `upstream::rollup`): recorded on the hour of the daemon's wall clock as
//! `analytics.hourly` events, so the bridge forwards them from the log like
//! every other event; missed hours are caught up once after a restart.

mod common;

use common::*;
use mesero::clock::Wall;
use serde_json::Value;

fn at(s: &str) -> std::time::SystemTime {
    mesero::clock::parse(s).expect("time")
}

/// The bridge is on but its upstream refuses: rollups are recorded (and
/// wait in the log for the link) all the same.
fn bridged(dir: &std::path::Path) -> mesero::config::Config {
    config(
        dir,
        &[
            ("MESERO_BRIDGE_URL", "mqtt://127.0.0.1:1"),
            ("MESERO_SITE_TIMEZONE", "UTC"),
        ],
    )
}

/// The rollups recorded so far, once there are at least `n`.
async fn rollups_until(base: &str, n: usize) -> Vec<Value> {
    let page = get_json_until(
        base,
        "/api/v1/events?type=analytics.hourly&limit=1000",
        &format!("{n} rollups"),
        |page| page["events"].as_array().is_some_and(|e| e.len() >= n),
    )
    .await;
    page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["data"]["rollup"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hour_is_rolled_up_once_on_the_hour_and_missed_ones_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(at("2026-12-02T18:59:00.000Z"));
    let d = TestDaemon::start_at(bridged(dir.path()), wall.clone()).await;
    let (status, body) = put_state(
        &d.base,
        Some(STAFF),
        1,
        r#"{"state":"occupied","party_size":2}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    wall.set(at("2026-12-02T19:00:00.000Z"));
    let got = rollups_until(&d.base, 1).await;
    let first = &got[0];
    assert_eq!(first["hour"], "2026-12-02T18:00:00.000Z");
    assert_eq!(
        (first["seated"].as_u64(), first["covers"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(first["ended"], 0);
    assert_eq!(first["tables"], 4);
    // One table for one minute of 4 × 60.
    assert_eq!(first["utilization"], 0.0);

    wall.set(at("2026-12-02T19:20:00.000Z"));
    let (status, body) = put_state(&d.base, Some(STAFF), 1, r#"{"state":"free"}"#).await;
    assert_eq!(status, 200, "{body}");
    wall.set(at("2026-12-02T20:00:00.000Z"));
    let got = rollups_until(&d.base, 2).await;
    let second = &got[1];
    assert_eq!(second["hour"], "2026-12-02T19:00:00.000Z");
    assert_eq!(
        (second["seated"].as_u64(), second["ended"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(second["median_turn_minutes"], 21.0);
    // 20 of 240 table-minutes.
    assert_eq!(second["utilization"], 0.08);
    d.stop().await;

    // Down from 20:00 to 23:30: the hours 20, 21 and 22 are caught up,
    // each once, in order; 18 and 19 are not recorded again.
    wall.set(at("2026-12-02T23:30:00.000Z"));
    let d = TestDaemon::start_at(bridged(dir.path()), wall.clone()).await;
    let got = rollups_until(&d.base, 5).await;
    let hours: Vec<&str> = got
        .iter()
        .map(|r| r["hour"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        hours,
        [
            "2026-12-02T18:00:00.000Z",
            "2026-12-02T19:00:00.000Z",
            "2026-12-02T20:00:00.000Z",
            "2026-12-02T21:00:00.000Z",
            "2026-12-02T22:00:00.000Z",
        ]
    );
    // They wait in the bridge's backlog: the link is down.
    let stats = stats_until(&d.base, "a backlog", |s| {
        s["bridge"]["backlog_events"].as_u64() >= Some(5)
    })
    .await;
    assert_eq!(stats["bridge"]["connected"], false);
    // The local stream gets them too, as events of their own type.
    let events = all_events(&d.base, 0).await;
    let rollup = events
        .iter()
        .find(|e| e["type"] == "analytics.hourly")
        .expect("a rollup event");
    assert_eq!(rollup["actor"], "system");
    d.stop().await;
}
