//! `crash-loop`: the tool runs the daemon itself on a fresh database, puts
//! it under load (HTTP changes, MQTT readings and QoS 1 `set` commands,
//! SSE and WebSocket clients) and `kill -9`s it at random moments. After
//! each kill: `PRAGMA integrity_check` on the file; after each restart:
//! every acknowledged change is in `/api/v1/events` and the tables' state
//! is that of their last event; the SSE clients resume by `Last-Event-ID`
//! and their checks (no gap, no duplicate) run across every restart.

use crate::clients::Shared;
use crate::daemon::{self, ConfigArgs, Daemon};
use crate::load;
use crate::stats::r3;
use crate::streams::{connect_all, get_json};
use anyhow::Context as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Failures kept in the report (the count is always complete).
const MAX_LISTED: usize = 20;
/// The MQTT client id of the `set` commands (actor `mqtt:<id>`).
const SET_CLIENT: &str = "bench-set";

#[derive(clap::Args, Debug, Clone)]
pub struct CrashArgs {
    /// The `mesero` binary.
    #[arg(long, default_value = "target/release/mesero")]
    pub daemon: PathBuf,
    /// Kill -9 rounds.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Working directory (config, database, log); default: a new one under the temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 150)]
    pub sse: usize,
    #[arg(long, default_value_t = 50)]
    pub ws: usize,
    /// HTTP changes a second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// MQTT readings a second, over 20 nodes.
    #[arg(long, default_value_t = 400.0)]
    pub readings: f64,
    /// Seconds of load before each kill: uniformly random in [MIN, MAX].
    #[arg(long, default_value_t = 0.3)]
    pub min_up: f64,
    #[arg(long, default_value_t = 1.5)]
    pub max_up: f64,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// xorshift64*: reproducible kill moments without a rand dependency.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// One event, as far as the checks need it.
struct Logged {
    table: Option<i64>,
    to: Option<String>,
    actor: String,
}

/// The log as fetched so far, extended after each restart.
#[derive(Default)]
struct Log {
    events: HashMap<u64, Logged>,
    through: u64,
}

impl Log {
    async fn update(&mut self, base: &str) -> anyhow::Result<()> {
        for e in crate::streams::events_after(base, daemon::TOKEN, self.through).await? {
            let Some(seq) = e["seq"].as_u64() else {
                continue;
            };
            self.through = self.through.max(seq);
            self.events.insert(
                seq,
                Logged {
                    table: e["table"].as_i64(),
                    to: if e["type"] == "table.state" {
                        e["data"]["to"].as_str().map(str::to_string)
                    } else {
                        None
                    },
                    actor: e["actor"].as_str().unwrap_or("").to_string(),
                },
            );
        }
        Ok(())
    }
}

pub async fn run(args: &CrashArgs) -> anyhow::Result<Value> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mesero-bench-crash-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("mesero.db");
    let cfg = ConfigArgs {
        http: daemon::free_port()?,
        mqtt: daemon::free_port()?,
        db: db.clone(),
        tables: 30,
        nodes: 20,
    };
    let mut d = Daemon::new(args.daemon.clone(), &dir);
    std::fs::write(d.config_path(), daemon::config(&cfg))?;
    let base = format!("http://127.0.0.1:{}", cfg.http);
    let broker = format!("127.0.0.1:{}", cfg.mqtt);
    d.start()?;
    d.ready(&base).await?;

    let shared = Shared::new(base.clone(), daemon::TOKEN.to_string(), 1);
    let (tallies, _) = connect_all(&shared, args.sse, args.ws).await?;
    let load_stop = CancellationToken::new();
    let changes = load::http_changes(
        Arc::clone(&shared),
        (1..=20).collect(),
        args.rate,
        16,
        true,
        load_stop.clone(),
    );
    let nodes: Vec<String> = (1..=cfg.nodes).map(|i| format!("node-{i}")).collect();
    let readings = load::readings(
        broker.clone(),
        "bench".into(),
        nodes,
        args.readings,
        5,
        load_stop.clone(),
    );
    let sets = load::mqtt_sets(
        broker,
        "bench".into(),
        (daemon::MQTT_USER.0.into(), daemon::MQTT_USER.1.into()),
        SET_CLIENT.into(),
        (21..=30).collect(),
        Duration::from_millis(20),
        load_stop.clone(),
    );

    let mut rng = args.seed.max(1);
    let mut log = Log::default();
    let mut failures: Vec<String> = Vec::new();
    let mut failed = 0usize;
    let mut fail = |what: String| {
        failed += 1;
        if failures.len() < MAX_LISTED {
            failures.push(what);
        }
    };
    let mut integrity_ok = 0;
    let mut restart_s = Vec::new();
    let started = Instant::now();
    for round in 1..=args.rounds {
        let up = args.min_up + (args.max_up - args.min_up).max(0.0) * next_random(&mut rng);
        tokio::time::sleep(Duration::from_secs_f64(up)).await;
        let killed = Instant::now();
        d.kill9()?;
        match daemon::integrity(&db) {
            Ok(s) if s == "ok" => integrity_ok += 1,
            Ok(s) => fail(format!("round {round}: integrity_check: {s}")),
            Err(e) => fail(format!("round {round}: integrity_check failed: {e:#}")),
        }
        d.start()?;
        d.ready(&base).await?;
        restart_s.push(killed.elapsed().as_secs_f64());

        // Acknowledged before the log is read: each must be in it.
        let acked: Vec<load::Acked> = changes.acks.lock().map(|a| a.clone()).unwrap_or_default();
        let set_acked: HashMap<i64, u64> = sets.lock().map(|s| s.clone()).unwrap_or_default();
        let snapshot = get_json(&base, "/api/v1/snapshot", daemon::TOKEN).await?;
        log.update(&base).await?;
        for a in &acked {
            match log.events.get(&a.seq) {
                Some(e) if e.table == Some(a.table) && e.to.as_deref() == Some(a.state) => {}
                Some(_) => fail(format!(
                    "round {round}: seq {} is not table {} → {}",
                    a.seq, a.table, a.state
                )),
                None => fail(format!(
                    "round {round}: acknowledged seq {} missing from /events",
                    a.seq
                )),
            }
        }
        for (table, n) in &set_acked {
            let logged = log
                .events
                .values()
                .filter(|e| {
                    e.table == Some(*table)
                        && e.to.is_some()
                        && e.actor == format!("mqtt:{SET_CLIENT}")
                })
                .count() as u64;
            if logged < *n {
                fail(format!(
                    "round {round}: table {table}: {n} MQTT sets acknowledged, {logged} in /events"
                ));
            }
        }
        // Each table's state at the snapshot's seq is its last event's.
        let at = snapshot["seq"].as_u64().unwrap_or(0);
        let mut last: HashMap<i64, (u64, &str)> = HashMap::new();
        for (seq, e) in &log.events {
            if let (Some(t), Some(to)) = (e.table, e.to.as_deref()) {
                if *seq <= at && last.get(&t).is_none_or(|(s, _)| s < seq) {
                    last.insert(t, (*seq, to));
                }
            }
        }
        for t in snapshot["tables"].as_array().cloned().unwrap_or_default() {
            let (Some(id), Some(state)) = (t["id"].as_i64(), t["state"].as_str()) else {
                continue;
            };
            if let Some((seq, to)) = last.get(&id) {
                if *to != state {
                    fail(format!(
                        "round {round}: table {id} is {state}, its last event (seq {seq}) says {to}"
                    ));
                }
            }
        }
        let lost: u64 = tallies.iter().map(|(_, t)| t.lost.load(Relaxed)).sum();
        let dup: u64 = tallies
            .iter()
            .map(|(_, t)| t.duplicated.load(Relaxed))
            .sum();
        if lost + dup > 0 {
            fail(format!(
                "round {round}: stream clients so far: {lost} lost, {dup} duplicated"
            ));
        }
        eprintln!(
            "crash-loop: round {round}/{}: restarted in {:.2} s, {} changes acknowledged",
            args.rounds,
            restart_s[round - 1],
            acked.len()
        );
    }
    load_stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let head = get_json(&base, "/api/v1/stats", daemon::TOKEN).await?["seq"]
        .as_u64()
        .context("stats: seq")?;
    let until = Instant::now() + Duration::from_secs(20);
    while tallies.iter().any(|(_, t)| t.last.load(Relaxed) < head) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sse: Vec<_> = tallies.iter().filter(|(ws, _)| !ws).collect();
    let ws: Vec<_> = tallies.iter().filter(|(ws, _)| *ws).collect();
    let count = |list: &[&(bool, Arc<crate::clients::Tally>)],
                 f: &dyn Fn(&crate::clients::Tally) -> u64| {
        list.iter().map(|(_, t)| f(t)).sum::<u64>()
    };
    let behind = |list: &[&(bool, Arc<crate::clients::Tally>)]| {
        list.iter()
            .map(|(_, t)| head.saturating_sub(t.last.load(Relaxed)))
            .sum::<u64>()
    };
    let sse_lost = count(&sse, &|t| t.lost.load(Relaxed)) + behind(&sse);
    let ws_lost = count(&ws, &|t| t.lost.load(Relaxed)) + behind(&ws);
    let duplicated =
        count(&sse, &|t| t.duplicated.load(Relaxed)) + count(&ws, &|t| t.duplicated.load(Relaxed));
    let sse_resets = count(&sse, &|t| t.resets.load(Relaxed));
    if sse_lost + ws_lost + duplicated + sse_resets > 0 {
        fail(format!(
            "at the end: {sse_lost} lost (SSE), {ws_lost} lost (WebSocket), {duplicated} duplicated, {sse_resets} SSE resets"
        ));
    }
    shared.ending.store(true, Relaxed);
    shared.stop.cancel();
    d.stop()?;
    let final_check = daemon::integrity(&db).unwrap_or_else(|e| format!("{e:#}"));
    if final_check != "ok" {
        fail(format!(
            "after the last stop: integrity_check: {final_check}"
        ));
    }
    restart_s.sort_by(f64::total_cmp);
    let median = restart_s.get(restart_s.len() / 2).copied().unwrap_or(0.0);
    let set_total: u64 = sets.lock().map(|s| s.values().sum()).unwrap_or(0);
    let report = json!({
        "scenario": "crash-loop",
        "args": format!("{args:?}"),
        "dir": dir.display().to_string(),
        "rounds": args.rounds,
        "seconds": r3(started.elapsed().as_secs_f64()),
        "integrity_ok": integrity_ok,
        "restart_s": {"median": r3(median), "max": r3(restart_s.last().copied().unwrap_or(0.0))},
        "http_changes": {"sent": changes.sent.load(Relaxed), "acked": changes.acked.load(Relaxed), "errors": changes.errors.load(Relaxed)},
        "mqtt_sets_acked": set_total,
        "readings_sent": readings.load(Relaxed),
        "events": head,
        "clients": {"sse": args.sse, "ws": args.ws,
                    "reconnects": count(&sse, &|t| t.reconnects.load(Relaxed)) + count(&ws, &|t| t.reconnects.load(Relaxed)),
                    "ws_resets": count(&ws, &|t| t.resets.load(Relaxed)),
                    "sse_lost": sse_lost, "ws_lost": ws_lost, "duplicated": duplicated, "sse_resets": sse_resets},
        "failures": failed,
        "failure_list": failures,
        "ok": failed == 0,
    });
    if args.dir.is_none() && failed == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}
