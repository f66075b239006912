//! A short smoke of the load tool (`mesero-bench`, docs/PERFORMANCE.md)
//! against the real daemon: a few hundred stream clients under table
//! changes, then one `kill -9` round of the crash loop. Correctness only
//! (no event lost or duplicated, acknowledged changes kept, the database
//! intact), never timings.

mod common;

use common::{Process, STAFF};
use std::process::Command;

/// Runs `mesero-bench ARGS`; returns its exit status and JSON report.
fn bench(args: &[&str]) -> (std::process::ExitStatus, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_mesero-bench"))
        .args(args)
        .output()
        .expect("run mesero-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "mesero-bench printed no report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, report)
}

#[test]
fn a_few_hundred_stream_clients_get_every_change_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(
        dir.path(),
        &[
            ("MESERO_HTTP_MAX_STREAMS", "1000"),
            ("MESERO_HTTP_MAX_CONNECTIONS", "2000"),
        ],
    );
    let pid = daemon.pid().to_string();
    let (status, report) = bench(&[
        "streams",
        "--url",
        &daemon.base,
        "--token",
        STAFF,
        "--pid",
        &pid,
        "--sse",
        "150",
        "--ws",
        "150",
        "--stalled",
        "2",
        "--rate",
        "40",
        "--tables",
        "1-4",
        "--warmup",
        "1",
        "--duration",
        "4",
    ]);
    let c = &report["correctness"];
    assert!(
        c["events"].as_u64().unwrap_or(0) > 0,
        "no change got through: {report:#}"
    );
    assert_eq!(c["lost"], 0, "{report:#}");
    assert_eq!(c["duplicated"], 0, "{report:#}");
    assert_eq!(c["committed_in_log"], c["events"], "{report:#}");
    assert!(status.success(), "mesero-bench failed a check: {report:#}");
}

#[test]
fn after_a_kill_9_under_load_nothing_acknowledged_is_lost_and_streams_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("crash");
    let (status, report) = bench(&[
        "crash-loop",
        "--daemon",
        env!("CARGO_BIN_EXE_mesero"),
        "--dir",
        &work.display().to_string(),
        "--rounds",
        "1",
        "--sse",
        "60",
        "--ws",
        "20",
        "--rate",
        "40",
        "--readings",
        "100",
    ]);
    assert_eq!(report["integrity_ok"], 1, "{report:#}");
    assert_eq!(report["failures"], 0, "{report:#}");
    assert!(
        report["http_changes"]["acked"].as_u64().unwrap_or(0) > 0,
        "no change was acknowledged: {report:#}"
    );
    assert!(status.success(), "mesero-bench failed a check: {report:#}");
}
