//! The load: table changes over HTTP at a set rate, sensor readings over
//! MQTT from many nodes, and staff `set` commands over MQTT (QoS 1).
//! Each keeps going through a daemon restart (errors are counted, then it
//! retries), and records what the daemon acknowledged.

use crate::clients::Shared;
use crate::mqtt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Wait after a failed request or connection before the next try.
const RETRY_WAIT: Duration = Duration::from_millis(20);

/// A change the daemon answered with 2xx and a seq.
#[derive(Debug, Clone)]
pub struct Acked {
    pub seq: u64,
    pub table: i64,
    pub state: &'static str,
}

#[derive(Default)]
pub struct ChangeStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// 2xx without a seq: the table was already in that state.
    pub no_event: AtomicU64,
    pub errors: AtomicU64,
    /// Every acknowledged change, when asked to keep them (crash loop).
    pub acks: Mutex<Vec<Acked>>,
}

fn state_name(on: bool) -> &'static str {
    if on { "occupied" } else { "free" }
}

/// PUTs `/api/v1/tables/{id}/state` round-robin over `tables` at `rate`
/// a second, at most `inflight` at once, toggling each table between
/// free and occupied, until `stop`.
pub fn http_changes(
    shared: Arc<Shared>,
    tables: Vec<i64>,
    rate: f64,
    inflight: usize,
    keep: bool,
    stop: CancellationToken,
) -> Arc<ChangeStats> {
    let stats = Arc::new(ChangeStats::default());
    if rate <= 0.0 || tables.is_empty() {
        return stats;
    }
    let out = Arc::clone(&stats);
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(inflight)
        .build()
        .unwrap_or_default();
    let toggles: Arc<Vec<AtomicBool>> =
        Arc::new(tables.iter().map(|_| AtomicBool::new(false)).collect());
    let gate = Arc::new(Semaphore::new(inflight.max(1)));
    tokio::spawn(async move {
        let start = Instant::now();
        let mut n: u64 = 0;
        loop {
            let next = start + Duration::from_secs_f64(n as f64 / rate);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                p = Arc::clone(&gate).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let i = (n as usize) % tables.len();
            n += 1;
            let table = tables[i];
            let state = state_name(!toggles[i].fetch_xor(true, Relaxed));
            let (client, shared, stats) = (client.clone(), Arc::clone(&shared), Arc::clone(&stats));
            tokio::spawn(async move {
                let _permit = permit;
                stats.sent.fetch_add(1, Relaxed);
                let sent_us = shared.now_us();
                let res = client
                    .put(format!("{}/api/v1/tables/{table}/state", shared.base()))
                    .bearer_auth(&shared.token)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"state":"{state}"}}"#))
                    .send()
                    .await;
                let body = match res {
                    Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                    _ => None,
                };
                let Some(body) = body else {
                    stats.errors.fetch_add(1, Relaxed);
                    tokio::time::sleep(RETRY_WAIT).await;
                    return;
                };
                let seq = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["seq"].as_u64());
                match seq {
                    Some(seq) => {
                        shared.sent(seq, sent_us);
                        stats.acked.fetch_add(1, Relaxed);
                        if keep {
                            if let Ok(mut acks) = stats.acks.lock() {
                                acks.push(Acked { seq, table, state });
                            }
                        }
                    }
                    None => {
                        stats.no_event.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
    out
}

/// Sensor readings: `nodes` MQTT clients publishing QoS 0 on
/// `mesero/<site>/sensors/<node>`, `rate` readings a second in total;
/// each node flips its presence every `toggle_every` readings (the rest
/// repeat it, as real nodes do). Returns the count of readings sent.
pub fn readings(
    broker: String,
    site: String,
    nodes: Vec<String>,
    rate: f64,
    toggle_every: u64,
    stop: CancellationToken,
) -> Arc<AtomicU64> {
    let sent = Arc::new(AtomicU64::new(0));
    if rate <= 0.0 || nodes.is_empty() {
        return sent;
    }
    let per_node = rate / nodes.len() as f64;
    for (k, node) in nodes.into_iter().enumerate() {
        let (broker, stop, sent) = (broker.clone(), stop.clone(), Arc::clone(&sent));
        let topic = format!("mesero/{site}/sensors/{node}");
        tokio::spawn(async move {
            // Spread the nodes' phases over one period.
            let start = Instant::now() + Duration::from_secs_f64(k as f64 / rate);
            let mut n: u64 = 0;
            'connect: loop {
                if stop.is_cancelled() {
                    return;
                }
                let Ok(mut client) =
                    mqtt::Client::connect(&broker, &format!("bench-{node}"), None).await
                else {
                    tokio::time::sleep(RETRY_WAIT).await;
                    continue;
                };
                let mut frame = Vec::new();
                loop {
                    let next = start + Duration::from_secs_f64(n as f64 / per_node);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep_until(next) => {}
                    }
                    let present = (n / toggle_every.max(1)) % 2 == 0;
                    frame.clear();
                    let payload: &[u8] = if present {
                        b"{\"present\":true}"
                    } else {
                        b"{\"present\":false}"
                    };
                    mqtt::publish_frame(&topic, payload, 0, 0, &mut frame);
                    if client.write.write_all(&frame).await.is_err()
                        || client.write.flush().await.is_err()
                    {
                        continue 'connect;
                    }
                    n += 1;
                    sent.fetch_add(1, Relaxed);
                }
            }
        });
    }
    sent
}

/// Staff `set` commands over MQTT at QoS 1, one at a time, each awaiting
/// its PUBACK (sent only after the commit): per table, how many were
/// acknowledged. Toggles each of `tables` in turn.
pub fn mqtt_sets(
    broker: String,
    site: String,
    user: (String, String),
    client_id: String,
    tables: Vec<i64>,
    every: Duration,
    stop: CancellationToken,
) -> Arc<Mutex<HashMap<i64, u64>>> {
    let acked = Arc::new(Mutex::new(HashMap::new()));
    if tables.is_empty() {
        return acked;
    }
    let out = Arc::clone(&acked);
    tokio::spawn(async move {
        let mut n: usize = 0;
        let mut pkid: u16 = 0;
        let mut on = vec![false; tables.len()];
        'connect: loop {
            if stop.is_cancelled() {
                return;
            }
            let Ok(mut client) =
                mqtt::Client::connect(&broker, &client_id, Some((&user.0, &user.1))).await
            else {
                tokio::time::sleep(RETRY_WAIT).await;
                continue;
            };
            loop {
                let i = n % tables.len();
                let table = tables[i];
                let state = state_name(!on[i]);
                pkid = pkid.wrapping_add(1).max(1);
                let topic = format!("mesero/{site}/tables/{table}/set");
                let payload = format!(r#"{{"state":"{state}"}}"#);
                let done = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = client.publish_acked(&topic, payload.as_bytes(), pkid) => r,
                };
                if done.is_err() {
                    // Unacknowledged: the next try sends the same state again.
                    continue 'connect;
                }
                on[i] = !on[i];
                n += 1;
                if let Ok(mut acked) = acked.lock() {
                    *acked.entry(table).or_insert(0) += 1;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
    });
    out
}
