//! `mesero-bench`: the load tool of docs/PERFORMANCE.md.
//!
//! - `streams`: SSE and WebSocket clients (and stalled ones) against a
//!   running daemon while tables change over HTTP and sensor nodes publish
//!   over MQTT; change → client latency, lost and duplicated events per
//!   client, connection setup rate, the daemon's RSS and CPU.
//! - `ingest`: `streams` shaped as sensor ingest (5,000 readings/s from
//!   200 nodes), with the writer's commits/s (and fsyncs/s through perf).
//! - `mqtt`: publishers and subscribers against any broker (mesero's or
//!   Mosquitto), delivered msg/s, loss, latency, broker RSS and CPU.
//! - `crash-loop`: runs the daemon itself and `kill -9`s it under load,
//!   checking integrity, acknowledged changes and stream resumption.
//! - `config`: prints the bench configuration the scenarios expect.
//!
//! Each run prints its report (JSON) and, with `--out PREFIX`, writes
//! PREFIX.json and (for latency scenarios) PREFIX.svg, a CDF plot. The
//! exit status is 1 when a correctness check failed (loss, duplicates,
//! integrity), 2 when the run itself could not be done.

mod clients;
mod crash;
mod daemon;
mod load;
mod mqtt;
mod mqttload;
mod stats;
mod streams;
mod svg;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mesero-bench",
    about = "Load tool for mesero (docs/PERFORMANCE.md)"
)]
struct Cli {
    /// Write the report to PREFIX.json and the latency plot to PREFIX.svg.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Stream clients under table changes and sensor readings.
    Streams(streams::StreamsArgs),
    /// Sensor ingest: readings from many nodes, the writer's commits.
    Ingest(IngestArgs),
    /// MQTT publish/subscribe load against any broker.
    Mqtt(mqttload::MqttArgs),
    /// kill -9 under load, N times, checking what survives.
    CrashLoop(crash::CrashArgs),
    /// Print the bench configuration.
    Config(daemon::ConfigArgs),
}

#[derive(clap::Args, Debug)]
struct IngestArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    #[arg(long, default_value = daemon::TOKEN)]
    token: String,
    #[arg(long)]
    pid: Option<u32>,
    /// Readings a second, in total.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// A node flips its presence every this many readings.
    #[arg(long, default_value_t = 10)]
    toggle_every: u64,
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Stream clients checking that every event is streamed (half SSE, half WebSocket).
    #[arg(long, default_value_t = 20)]
    clients: usize,
    #[arg(long)]
    perf_fsync: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the mode; `Ok(false)` when a correctness check failed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let (report, plot) = match cli.command {
        Mode::Streams(a) => {
            let (r, series) = streams::run(&a).await?;
            (r, Some(("change → event latency", series)))
        }
        Mode::Ingest(a) => {
            let a = streams::StreamsArgs {
                url: a.url,
                token: a.token,
                pid: a.pid,
                sse: a.clients / 2,
                ws: a.clients - a.clients / 2,
                stalled: 0,
                rate: 0.0,
                tables: "1-1".into(),
                inflight: 1,
                broker: Some(a.broker),
                site: "bench".into(),
                readings: a.rate,
                nodes: a.nodes,
                toggle_every: a.toggle_every,
                warmup: 2.0,
                duration: a.duration,
                drain: 20.0,
                perf_fsync: a.perf_fsync,
            };
            let (mut r, _) = streams::run(&a).await?;
            r["scenario"] = "ingest".into();
            (r, None)
        }
        Mode::Mqtt(a) => {
            let (r, series) = mqttload::run(&a).await?;
            (r, Some(("MQTT publish → delivery latency", series)))
        }
        Mode::CrashLoop(a) => (crash::run(&a).await?, None),
        Mode::Config(a) => {
            print!("{}", daemon::config(&a));
            return Ok(true);
        }
    };
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(prefix) = &cli.out {
        let with = |ext: &str| {
            let mut p = prefix.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        std::fs::write(with(".json"), format!("{text}\n"))?;
        if let Some((title, series)) = plot {
            let series: Vec<(&str, Vec<(u64, f64)>)> =
                series.into_iter().filter(|(_, p)| !p.is_empty()).collect();
            std::fs::write(with(".svg"), svg::cdf(title, &series))?;
        }
    }
    Ok(report["ok"] == true)
}
