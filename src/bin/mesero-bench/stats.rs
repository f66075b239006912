//! Measuring: a lock-free latency histogram, the daemon's RSS and CPU
//! from `/proc`, and the JSON shapes of both.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sub-buckets per power of two: about 1.5 % resolution at any magnitude.
const SUB: u64 = 64;
/// Buckets up to 2^42 µs (51 days), far past any run.
const BUCKETS: usize = (SUB as usize) * 37;

/// A log-linear histogram of microseconds, shared by many clients:
/// recording is one atomic add, so thousands of client tasks never wait
/// on each other.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    max: AtomicU64,
}

fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros());
    let m = v >> (e - 6);
    ((SUB * (e - 5) + (m - SUB)) as usize).min(BUCKETS - 1)
}

/// The middle of bucket `i`.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let e = i / SUB + 5;
    let m = i % SUB + SUB;
    (m << (e - 6)) + ((1u64 << (e - 6)) / 2)
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, micros: u64) {
        self.buckets[index(micros)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(micros, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The `q` quantile (0..=1) in µs; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return value(i).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }

    /// (µs, cumulative share) points for a CDF plot.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let total = self.count();
        if total == 0 {
            return Vec::new();
        }
        let mut seen = 0;
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Relaxed);
            if n > 0 {
                seen += n;
                out.push((value(i).max(1), seen as f64 / total as f64));
            }
        }
        out
    }

    /// `{"count", "p50_ms", "p99_ms", "p999_ms", "max_ms"}`.
    pub fn json(&self) -> Value {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        json!({
            "count": self.count(),
            "p50_ms": ms(self.quantile(0.5)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max.load(Relaxed)),
        })
    }
}

/// RSS (KiB) and CPU time (user + system, seconds) of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    pub rss_kib: u64,
    pub cpu_s: f64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads `/proc/PID/status` (VmRSS) and `/proc/PID/stat` (utime, stime).
pub fn sample(pid: u32, ticks: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are 11, 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcSample {
        at: Instant::now(),
        rss_kib,
        cpu_s: (utime + stime) / ticks,
    })
}

/// Samples a process every 250 ms in a background task; keeps the peak RSS.
#[derive(Clone)]
pub struct Watch {
    pid: Option<u32>,
    ticks: f64,
    peak_kib: Arc<AtomicU64>,
    marks: Arc<Mutex<Vec<(String, ProcSample)>>>,
}

impl Watch {
    pub fn start(pid: Option<u32>) -> Watch {
        let watch = Watch {
            pid,
            ticks: clock_ticks(),
            peak_kib: Arc::new(AtomicU64::new(0)),
            marks: Arc::new(Mutex::new(Vec::new())),
        };
        if let Some(pid) = pid {
            let peak = Arc::clone(&watch.peak_kib);
            let ticks = watch.ticks;
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(250));
                loop {
                    every.tick().await;
                    match sample(pid, ticks) {
                        Some(s) => {
                            peak.fetch_max(s.rss_kib, Relaxed);
                        }
                        None => return,
                    }
                }
            });
        }
        watch
    }

    /// Records a named sample now (e.g. "before clients", "end").
    pub fn mark(&self, name: &str) -> Option<ProcSample> {
        let s = sample(self.pid?, self.ticks)?;
        self.peak_kib.fetch_max(s.rss_kib, Relaxed);
        if let Ok(mut marks) = self.marks.lock() {
            marks.push((name.to_string(), s));
        }
        Some(s)
    }

    pub fn get(&self, name: &str) -> Option<ProcSample> {
        let marks = self.marks.lock().ok()?;
        marks.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }

    /// CPU used between two marks, in cores (1.0 = one core busy).
    pub fn cores(&self, from: &str, to: &str) -> Option<f64> {
        let (a, b) = (self.get(from)?, self.get(to)?);
        let wall = b.at.duration_since(a.at).as_secs_f64();
        (wall > 0.0).then(|| (b.cpu_s - a.cpu_s) / wall)
    }

    /// Every mark with its RSS and CPU seconds, and the peak RSS.
    pub fn json(&self) -> Value {
        let Some(pid) = self.pid else {
            return Value::Null;
        };
        let marks = self.marks.lock().map(|m| m.clone()).unwrap_or_default();
        let first = marks.first().map(|(_, s)| s.at);
        let list: Vec<Value> = marks
            .iter()
            .map(|(name, s)| {
                json!({
                    "mark": name,
                    "t_s": first.map_or(0.0, |f| s.at.duration_since(f).as_secs_f64()),
                    "rss_kib": s.rss_kib,
                    "cpu_s": (s.cpu_s * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        json!({"pid": pid, "peak_rss_kib": self.peak_kib.load(Relaxed), "marks": list})
    }
}

/// Rounds to 3 decimals for the report.
pub fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
