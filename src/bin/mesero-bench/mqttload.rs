//! `mqtt`: publishers and subscribers against any MQTT 3.1.1 broker, so
//! the embedded broker and Mosquitto run the very same load. Each payload
//! carries (publisher, seq, send time): subscribers count what they lost,
//! got twice or out of order, and the latency from the publish.

use crate::mqtt::{self, Packet};
use crate::stats::{Histogram, Watch, r3};
use anyhow::bail;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// QoS 1 publishes a publisher keeps unacknowledged at once.
const QOS1_WINDOW: usize = 100;
/// As fast as possible: the buffer is flushed after this many publishes
/// (and whenever it fills).
const BURST: u64 = 64;
/// How long a publisher blocked in a write (a broker that stopped
/// reading) gets to finish once the run stops.
const PUBLISHER_STOP: Duration = Duration::from_secs(10);
/// Smallest payload: publisher (4 bytes), seq (8), send time (8).
const HEADER: usize = 20;

#[derive(clap::Args, Debug, Clone)]
pub struct MqttArgs {
    /// The broker, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// The broker's pid, for RSS and CPU from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    /// 0 or 1.
    #[arg(long, default_value_t = 0)]
    pub qos: u8,
    /// Messages a second over all publishers; 0: as fast as they can.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Topic prefix: publisher i publishes on PREFIX/i, subscribers take PREFIX/#.
    #[arg(long, default_value = "bench")]
    pub topic: String,
}

struct Sub {
    /// Next expected seq per publisher.
    next: Vec<u64>,
    got: u64,
    lost: u64,
    dup: u64,
}

pub async fn run(args: &MqttArgs) -> anyhow::Result<(Value, Vec<(&'static str, Vec<(u64, f64)>)>)> {
    if args.qos > 1 {
        bail!("--qos: 0 or 1");
    }
    let origin = Instant::now();
    let now_us = move || origin.elapsed().as_micros() as u64;
    let watch = Watch::start(args.pid);
    let hist = Arc::new(Histogram::default());
    let delivered = Arc::new(AtomicU64::new(0));
    let window = Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)));
    let stop_subs = CancellationToken::new();
    watch.mark("idle");

    let mut subs = Vec::new();
    for s in 0..args.subscribers {
        let mut client =
            mqtt::Client::connect(&args.broker, &format!("bench-sub-{s}"), None).await?;
        client
            .subscribe(&format!("{}/#", args.topic), args.qos)
            .await?;
        let (hist, delivered, window, stop) = (
            Arc::clone(&hist),
            Arc::clone(&delivered),
            Arc::clone(&window),
            stop_subs.clone(),
        );
        let publishers = args.publishers;
        subs.push(tokio::spawn(async move {
            let mut sub = Sub {
                next: vec![0; publishers],
                got: 0,
                lost: 0,
                dup: 0,
            };
            loop {
                let packet = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = client.read.next() => p,
                };
                let Ok(Some(packet)) = packet else { break };
                let Packet::Publish {
                    qos, pkid, payload, ..
                } = packet
                else {
                    continue;
                };
                if qos == 1
                    && (mqtt::puback(&mut client.write, pkid).await.is_err()
                        || client.write.flush().await.is_err())
                {
                    break;
                }
                let (Some(p), Some(seq), Some(sent)) = (
                    payload
                        .get(0..4)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_be_bytes),
                    payload
                        .get(4..12)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes),
                    payload
                        .get(12..20)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes),
                ) else {
                    continue;
                };
                let Some(next) = sub.next.get_mut(p as usize) else {
                    continue;
                };
                sub.got += 1;
                delivered.fetch_add(1, Relaxed);
                if seq < *next {
                    sub.dup += 1;
                    continue;
                }
                sub.lost += seq - *next;
                *next = seq + 1;
                if sent >= window.0.load(Relaxed) && sent < window.1.load(Relaxed) {
                    hist.record(now_us().saturating_sub(sent));
                }
            }
            sub
        }));
    }

    let stop_pubs = CancellationToken::new();
    let mut pubs = Vec::new();
    // Publishes written by each publisher, readable even if it is stuck.
    let mut counts: Vec<Arc<AtomicU64>> = Vec::new();
    for p in 0..args.publishers {
        let mut client =
            mqtt::Client::connect(&args.broker, &format!("bench-pub-{p}"), None).await?;
        let topic = format!("{}/{p}", args.topic);
        let (stop, qos, size) = (stop_pubs.clone(), args.qos, args.payload.max(HEADER));
        let per_pub = args.rate / args.publishers as f64;
        let count = Arc::new(AtomicU64::new(0));
        counts.push(Arc::clone(&count));
        pubs.push(tokio::spawn(async move {
            let gate = Arc::new(Semaphore::new(QOS1_WINDOW));
            let mut read = client.read;
            let acks = Arc::clone(&gate);
            let mut reader = tokio::spawn(async move {
                while let Ok(Some(packet)) = read.next().await {
                    if let Packet::PubAck { .. } = packet {
                        acks.add_permits(1);
                    }
                }
            });
            let start = tokio::time::Instant::now();
            let mut payload = vec![0u8; size];
            payload[0..4].copy_from_slice(&(p as u32).to_be_bytes());
            let mut frame = Vec::with_capacity(size + 64);
            let mut seq: u64 = 0;
            let mut pkid: u16 = 0;
            loop {
                if stop.is_cancelled() {
                    break;
                }
                if per_pub > 0.0 {
                    let next = start + Duration::from_secs_f64(seq as f64 / per_pub);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep_until(next) => {}
                    }
                }
                if qos == 1 {
                    let permit = tokio::select! {
                        _ = stop.cancelled() => break,
                        p = gate.acquire() => p,
                    };
                    match permit {
                        Ok(p) => p.forget(),
                        Err(_) => break,
                    }
                    pkid = pkid.wrapping_add(1).max(1);
                }
                payload[4..12].copy_from_slice(&seq.to_be_bytes());
                payload[12..20].copy_from_slice(&now_us().to_be_bytes());
                frame.clear();
                mqtt::publish_frame(&topic, &payload, qos, pkid, &mut frame);
                // Not raced against the stop: a frame cut in half would
                // corrupt the stream. A broker that stops reading holds
                // this, and the join below gives up on it.
                if client.write.write_all(&frame).await.is_err() {
                    break;
                }
                seq += 1;
                count.store(seq, Relaxed);
                if (per_pub > 0.0 || seq % BURST == 0) && client.write.flush().await.is_err() {
                    break;
                }
            }
            // End cleanly: await the last PUBACKs, then DISCONNECT and
            // read to the broker's close. Closing with PUBACKs unread
            // would send a RST, and the broker would drop what it had not
            // read yet.
            let _ = client.write.flush().await;
            let acked = async {
                while qos == 1 && gate.available_permits() < QOS1_WINDOW {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            let _ = tokio::time::timeout(PUBLISHER_STOP, acked).await;
            let _ = client.write.write_all(&mqtt::DISCONNECT).await;
            let _ = client.write.shutdown().await;
            if tokio::time::timeout(PUBLISHER_STOP, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }));
    }

    window
        .0
        .store(now_us() + (args.warmup * 1e6) as u64, Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let d0 = delivered.load(Relaxed);
    watch.mark("measure_start");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let measured = t0.elapsed().as_secs_f64();
    let d1 = delivered.load(Relaxed);
    watch.mark("measure_end");
    window.1.store(now_us(), Relaxed);
    stop_pubs.cancel();
    for p in pubs {
        let abort = p.abort_handle();
        if tokio::time::timeout(PUBLISHER_STOP, p).await.is_err() {
            abort.abort();
        }
    }
    let sent: Vec<u64> = counts.iter().map(|c| c.load(Relaxed)).collect();
    let total_sent: u64 = sent.iter().sum();
    // Drain: until every subscriber has everything, or nothing moved for 2 s.
    let expected = total_sent * args.subscribers as u64;
    let mut last = (delivered.load(Relaxed), Instant::now());
    while delivered.load(Relaxed) < expected && last.1.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = delivered.load(Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    watch.mark("end");
    stop_subs.cancel();
    let (mut got, mut gaps, mut tail, mut dup) = (0, 0, 0, 0);
    for s in subs {
        if let Ok(sub) = s.await {
            got += sub.got - sub.dup;
            dup += sub.dup;
            // Past the last one received from each publisher.
            gaps += sub.lost;
            tail += sub
                .next
                .iter()
                .zip(&sent)
                .map(|(n, s)| s.saturating_sub(*n))
                .sum::<u64>();
        }
    }
    let lost = gaps + tail;
    let report = json!({
        "scenario": "mqtt",
        "args": format!("{args:?}"),
        "broker": args.broker,
        "sent": total_sent,
        "sent_per_s": r3(total_sent as f64 / (args.warmup + measured)),
        "delivered": got,
        "delivered_per_s": r3((d1 - d0) as f64 / measured),
        "expected": expected,
        "lost": lost,
        "lost_in_gaps": gaps,
        "lost_at_the_end": tail,
        "lost_share": r3(lost as f64 / expected.max(1) as f64),
        "duplicated": dup,
        "latency": hist.json(),
        "broker_cpu_s": match (watch.get("measure_start"), watch.get("measure_end")) {
            (Some(a), Some(b)) => Some(r3(b.cpu_s - a.cpu_s)),
            _ => None,
        },
        "broker_cpu_cores": watch.cores("measure_start", "measure_end").map(r3),
        "rss_idle_kib": watch.get("idle").map(|s| s.rss_kib),
        "rss_end_kib": watch.get("end").map(|s| s.rss_kib),
        "proc": watch.json(),
        "ok": lost == 0 && dup == 0,
    });
    Ok((report, vec![("MQTT", hist.cdf())]))
}
