//! `streams` and `ingest`: stream clients against a running daemon while
//! changes (HTTP) and readings (MQTT) flow, then the checks and the report.

use crate::clients::{self, Shared, Tally};
use crate::load;
use crate::stats::{Watch, r3};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Clients connecting at once while the run sets up.
const CONNECT_BATCH: usize = 250;

#[derive(clap::Args, Debug, Clone)]
pub struct StreamsArgs {
    /// The daemon's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A staff token (streams need viewer, changes staff); default: the bench config's.
    #[arg(long, default_value = crate::daemon::TOKEN)]
    pub token: String,
    /// The daemon's pid, for RSS and CPU from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// SSE clients.
    #[arg(long, default_value_t = 100)]
    pub sse: usize,
    /// WebSocket clients.
    #[arg(long, default_value_t = 100)]
    pub ws: usize,
    /// Stalled clients (connect, never read), half SSE and half WebSocket.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
    /// Table changes a second over HTTP (0: none).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Tables the changes go to, as FIRST-LAST (tables without sensors).
    #[arg(long, default_value = "1-50")]
    pub tables: String,
    /// Changes in flight at once.
    #[arg(long, default_value_t = 32)]
    pub inflight: usize,
    /// The MQTT broker for sensor readings (host:port); none: no readings.
    #[arg(long)]
    pub broker: Option<String>,
    /// site.id (topic prefix mesero/<site>).
    #[arg(long, default_value = "bench")]
    pub site: String,
    /// Sensor readings a second, in total.
    #[arg(long, default_value_t = 0.0)]
    pub readings: f64,
    /// Sensor nodes (`node-1` .. `node-N`, kind mqtt in the config).
    #[arg(long, default_value_t = 200)]
    pub nodes: usize,
    /// A node flips its presence every this many readings.
    #[arg(long, default_value_t = 10)]
    pub toggle_every: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds the clients get to catch up once the load stops.
    #[arg(long, default_value_t = 20.0)]
    pub drain: f64,
    /// Count the daemon's fsync/fdatasync calls with `perf stat -p PID`.
    #[arg(long)]
    pub perf_fsync: bool,
}

pub fn parse_range(s: &str) -> anyhow::Result<Vec<i64>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (i64, i64) = (a.trim().parse()?, b.trim().parse()?);
    if a < 1 || b < a {
        bail!("{s:?} is not a range FIRST-LAST of table ids");
    }
    Ok((a..=b).collect())
}

pub async fn get_json(base: &str, path: &str, token: &str) -> anyhow::Result<Value> {
    let res = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    if !res.status().is_success() {
        bail!("GET {path}: {}", res.status());
    }
    Ok(serde_json::from_slice(&res.bytes().await?)?)
}

/// Every event after `since`, paging through `/api/v1/events`.
pub async fn events_after(base: &str, token: &str, mut since: u64) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let page = get_json(
            base,
            &format!("/api/v1/events?since={since}&limit=1000"),
            token,
        )
        .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return Ok(out);
        }
        since = page["next_since"].as_u64().context("next_since")?;
        out.extend(events);
    }
}

/// Connects `sse` + `ws` clients in batches; returns them and the seconds taken.
pub async fn connect_all(
    shared: &Arc<Shared>,
    sse: usize,
    ws: usize,
) -> anyhow::Result<(Vec<(bool, Arc<Tally>)>, f64)> {
    let started = Instant::now();
    // Interleaved, so each batch has both kinds.
    let mut order: Vec<bool> = Vec::with_capacity(sse + ws);
    let (mut s, mut w) = (sse, ws);
    while s + w > 0 {
        if s > 0 {
            order.push(false);
            s -= 1;
        }
        if w > 0 {
            order.push(true);
            w -= 1;
        }
    }
    let mut all = Vec::with_capacity(order.len());
    for batch in order.chunks(CONNECT_BATCH) {
        let tallies: Vec<(bool, Arc<Tally>)> = batch
            .iter()
            .map(|ws| (*ws, clients::spawn(Arc::clone(shared), *ws)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !tallies.iter().all(|(_, t)| t.connected.load(Relaxed)) {
            if Instant::now() > deadline {
                let n = tallies
                    .iter()
                    .filter(|(_, t)| !t.connected.load(Relaxed))
                    .count();
                bail!(
                    "{n} clients got no snapshot within 60 s (caps: http.max_streams, max_connections, ulimit -n?)"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        all.extend(tallies);
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

/// `perf stat` counting fsync and fdatasync of `pid` until [`Perf::finish`].
pub struct Perf(std::process::Child);

impl Perf {
    pub fn start(pid: u32) -> Option<Perf> {
        std::process::Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
                "-p",
            ])
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()
            .map(Perf)
    }

    /// Stops perf (SIGINT) and returns fsync + fdatasync calls.
    pub fn finish(self) -> Option<u64> {
        let child = self.0;
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .ok()?;
        let out = child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let calls = text
            .lines()
            .filter(|l| l.contains("sys_enter_f"))
            .filter_map(|l| l.split(',').next()?.trim().parse::<u64>().ok())
            .sum();
        Some(calls)
    }
}

fn sum(tallies: &[(bool, Arc<Tally>)], f: impl Fn(&Tally) -> u64) -> u64 {
    tallies.iter().map(|(_, t)| f(t)).sum()
}

/// Runs the scenario; returns the report and the latency plot series.
pub async fn run(
    args: &StreamsArgs,
) -> anyhow::Result<(Value, Vec<(&'static str, Vec<(u64, f64)>)>)> {
    let base = args.url.trim_end_matches('/').to_string();
    let tables = parse_range(&args.tables)?;
    let watch = Watch::start(args.pid);
    let before = get_json(&base, "/api/v1/stats", &args.token).await?;
    let head0 = before["seq"].as_u64().context("stats: seq")?;
    let total_s = args.warmup + args.duration + args.drain + 60.0;
    let events_per_s = args.rate + args.readings / args.toggle_every.max(1) as f64;
    let capacity = (events_per_s * total_s * 1.5) as usize + 10_000;
    let shared = Shared::new(base.clone(), args.token.clone(), capacity);
    shared.seq0.store(head0 + 1, Relaxed);
    watch.mark("idle");

    let (tallies, connect_s) = connect_all(&shared, args.sse, args.ws).await?;
    let stalled: Vec<_> = (0..args.stalled)
        .map(|i| clients::spawn_stalled(Arc::clone(&shared), i % 2 == 1))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stalled.iter().all(|s| s.load(Relaxed)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watch.mark("connected");

    let load_stop = CancellationToken::new();
    let now = shared.now_us();
    let warm = (args.warmup * 1e6) as u64;
    let dur = (args.duration * 1e6) as u64;
    shared.window.0.store(now + warm, Relaxed);
    shared.window.1.store(now + warm + dur, Relaxed);
    let changes = load::http_changes(
        Arc::clone(&shared),
        tables,
        args.rate,
        args.inflight,
        false,
        load_stop.clone(),
    );
    let nodes: Vec<String> = (1..=args.nodes).map(|i| format!("node-{i}")).collect();
    let readings = match &args.broker {
        Some(broker) => load::readings(
            broker.clone(),
            args.site.clone(),
            nodes,
            args.readings,
            args.toggle_every,
            load_stop.clone(),
        ),
        None => Arc::default(),
    };
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let w0 = get_json(&base, "/api/v1/stats", &args.token).await?;
    let (sent0, read0) = (changes.sent.load(Relaxed), readings.load(Relaxed));
    watch.mark("measure_start");
    let perf = if args.perf_fsync {
        args.pid.and_then(Perf::start)
    } else {
        None
    };
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let measured = t0.elapsed().as_secs_f64();
    let fsyncs = perf.and_then(Perf::finish);
    watch.mark("measure_end");
    let w1 = get_json(&base, "/api/v1/stats", &args.token).await?;
    let (sent1, read1) = (changes.sent.load(Relaxed), readings.load(Relaxed));
    load_stop.cancel();
    // Let answers in flight land before reading the head.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let head = get_json(&base, "/api/v1/stats", &args.token).await?["seq"]
        .as_u64()
        .context("stats: seq")?;
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain);
    while tallies.iter().any(|(_, t)| t.last.load(Relaxed) < head) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.mark("end");
    let behind: Vec<u64> = tallies
        .iter()
        .map(|(_, t)| head.saturating_sub(t.last.load(Relaxed)))
        .collect();
    shared.ending.store(true, Relaxed);
    shared.stop.cancel();

    let committed = events_after(&base, &args.token, head0).await?;
    let committed_in_range = committed
        .iter()
        .filter(|e| e["seq"].as_u64().is_some_and(|s| s <= head))
        .count() as u64;
    let lost = sum(&tallies, |t| t.lost.load(Relaxed)) + behind.iter().sum::<u64>();
    let duplicated = sum(&tallies, |t| t.duplicated.load(Relaxed));
    let clients = tallies.len().max(1) as f64;
    let rss = |m: &str| watch.get(m).map(|s| s.rss_kib);
    let per_client = |m: &str| match (rss("idle"), rss(m)) {
        (Some(a), Some(b)) => Some(r3((b as f64 - a as f64) / (clients + args.stalled as f64))),
        _ => None,
    };
    let commits = w1["writer"]["commits"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(w0["writer"]["commits"].as_u64().unwrap_or(0));
    let written = w1["writer"]["events"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(w0["writer"]["events"].as_u64().unwrap_or(0));
    let report = json!({
        "scenario": "streams",
        "args": format!("{args:?}"),
        "clients": {"sse": args.sse, "ws": args.ws, "stalled": args.stalled,
                    "connect_s": r3(connect_s), "connects_per_s": r3(clients / connect_s.max(1e-9))},
        "changes": {"requested_per_s": args.rate, "achieved_per_s": r3((sent1 - sent0) as f64 / measured),
                    "sent": changes.sent.load(Relaxed), "acked": changes.acked.load(Relaxed),
                    "no_event": changes.no_event.load(Relaxed), "errors": changes.errors.load(Relaxed)},
        "readings": {"requested_per_s": args.readings, "achieved_per_s": r3((read1 - read0) as f64 / measured),
                     "sent": readings.load(Relaxed)},
        "latency": {"sse": shared.sse.json(), "ws": shared.ws.json()},
        "correctness": {
            "head_seq": head, "events": head - head0,
            "committed_in_log": committed_in_range,
            "lost": lost, "duplicated": duplicated,
            "resets": sum(&tallies, |t| t.resets.load(Relaxed)),
            "reconnects": sum(&tallies, |t| t.reconnects.load(Relaxed)),
            "slow_closed": sum(&tallies, |t| t.slow_closed.load(Relaxed)),
            "clients_behind": behind.iter().filter(|b| **b > 0).count(),
        },
        "writer": {"commits_per_s": r3(commits as f64 / measured), "events_per_s": r3(written as f64 / measured),
                   "events_per_commit": r3(written as f64 / (commits.max(1)) as f64),
                   "fsyncs_per_s": fsyncs.map(|f| r3(f as f64 / measured))},
        "daemon": {
            "cpu_cores": watch.cores("measure_start", "measure_end").map(r3),
            "rss_idle_kib": rss("idle"), "rss_connected_kib": rss("connected"), "rss_end_kib": rss("end"),
            "rss_per_client_kib_connected": per_client("connected"), "rss_per_client_kib_end": per_client("end"),
            "proc": watch.json(),
        },
        "ok": lost == 0 && duplicated == 0 && committed_in_range == head - head0,
    });
    let series = vec![("SSE", shared.sse.cdf()), ("WebSocket", shared.ws.cdf())];
    Ok((report, series))
}
