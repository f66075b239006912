//! The liveness registry and the watchdog task: the daemon's long-lived
//! loops check in ([`Heartbeat`]), and [`run_watchdog`] feeds systemd's
//! watchdog only while every one of them has checked in recently. A hung
//! loop (deadlock, blocked I/O, a task that panicked) therefore stops the
//! pings and systemd restarts the daemon, instead of a half-dead process
//! answering `/healthz` forever.

use super::notify::Notifier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often loops check in when there is no watchdog (not under systemd,
/// or `WatchdogSec=` unset). Only the watchdog reads the beats, so this is
/// merely cheap, not important.
pub const DEFAULT_BEAT: Duration = Duration::from_secs(5);

/// Registry of the daemon's long-lived loops (writer, HTTP accept loop,
/// later sensors and broker). Cheap to clone; clones share the registry.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    /// Origin of the monotonic millisecond timestamps stored in the slots.
    /// `Instant` is monotonic, so wall-clock jumps (NTP on a Pi without an
    /// RTC fixes the clock minutes after boot) cannot fake staleness.
    epoch: Instant,
    /// How often each loop is expected to check in.
    beat_every: Duration,
    /// Only pushed to; a std mutex, never held across an await.
    loops: Mutex<Vec<Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    /// Milliseconds since `epoch` of the last beat.
    last_beat_ms: AtomicU64,
    /// Set by the debug-build fault hook ([`Liveness::hang`]).
    #[cfg(debug_assertions)]
    hung: std::sync::atomic::AtomicBool,
}

/// One loop's handle: the loop puts [`Heartbeat::tick`] in its `select!`
/// and calls [`Heartbeat::beat`] when it fires (or whenever it has made
/// progress).
///
/// There is no way to unregister: a task that panics or is aborted drops
/// its handle, and that is exactly the case the watchdog must catch.
#[derive(Debug)]
pub struct Heartbeat {
    slot: Arc<Slot>,
    registry: Arc<Registry>,
    /// Created on the first `tick`, inside the loop's runtime.
    ticker: Option<tokio::time::Interval>,
}

impl Liveness {
    pub fn new(beat_every: Duration) -> Self {
        Self {
            inner: Arc::new(Registry {
                epoch: Instant::now(),
                // tokio intervals panic on a zero period.
                beat_every: beat_every.max(Duration::from_millis(1)),
                loops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Registers a loop under `name` (named in the log when it goes stale)
    /// and counts it as having just beaten. One line per loop:
    /// `let mut heartbeat = liveness.register("sensor:pir-12");`
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let slot = Arc::new(Slot {
            name: name.into(),
            last_beat_ms: AtomicU64::new(self.inner.now_ms()),
            #[cfg(debug_assertions)]
            hung: std::sync::atomic::AtomicBool::new(false),
        });
        self.inner.lock().push(Arc::clone(&slot));
        Heartbeat {
            slot,
            registry: Arc::clone(&self.inner),
            ticker: None,
        }
    }

    /// The loops that have missed two beats in a row, in registration
    /// order; empty when all are alive (or none is registered yet).
    pub fn stale(&self) -> Vec<String> {
        self.inner
            .stale(self.inner.now_ms(), self.inner.beat_every * 2)
    }

    /// Fault injection for tests (debug builds only): from now on, the
    /// loops registered as `name` never see their [`Heartbeat::tick`] fire
    /// again, i.e. they hang at their next tick. Returns how many matched.
    #[cfg(debug_assertions)]
    pub fn hang(&self, name: &str) -> usize {
        let loops = self.inner.lock();
        let matching: Vec<_> = loops.iter().filter(|s| s.name == name).collect();
        for slot in &matching {
            slot.hung.store(true, Ordering::Relaxed);
        }
        matching.len()
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        // u64 milliseconds overflow after ~585 million years; saturate anyway
        // rather than cast blindly.
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        // The list is only pushed to; a panic while holding the lock cannot
        // leave it half-updated, so a poisoned lock is safe to use.
        self.loops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stale(&self, now_ms: u64, max_age: Duration) -> Vec<String> {
        let max_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        self.lock()
            .iter()
            .filter(|s| now_ms.saturating_sub(s.last_beat_ms.load(Ordering::Relaxed)) > max_ms)
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Heartbeat {
    /// Records that the loop is making progress. One relaxed atomic store;
    /// cheap enough for every iteration of a hot loop.
    pub fn beat(&self) {
        self.slot
            .last_beat_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }

    /// Completes once per beat period. For loops that otherwise block for
    /// long (an accept, a GPIO edge, an MQTT packet): a `select!` branch
    /// `_ = heartbeat.tick() => heartbeat.beat()` keeps them checking in.
    pub async fn tick(&mut self) {
        #[cfg(debug_assertions)]
        if self.slot.hung.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let every = self.registry.beat_every;
        self.ticker
            .get_or_insert_with(|| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                // After a stall, beat once, not in a burst.
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            })
            .tick()
            .await;
    }
}

// ---------------------------------------------------------------------------
// Watchdog task

/// Feeds the systemd watchdog. `timeout` is `WatchdogSec=`: pings go out
/// every `timeout / 2` (the rate `sd_watchdog_enabled(3)` recommends), and
/// only while no loop is stale ([`Liveness::stale`]; with the beat period
/// of [`Supervision::beat_every`](super::Supervision::beat_every) that is "silent for half the timeout").
/// So systemd kills a daemon with a hung loop at most 1.5 timeouts after
/// the hang. Returns when `cancel` fires.
pub async fn run_watchdog(
    notifier: Notifier,
    liveness: Liveness,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let half = (timeout / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(half);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stale = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let stale = liveness.stale();
        if stale.is_empty() {
            if was_stale {
                tracing::info!("all loops alive again; resuming watchdog pings");
                was_stale = false;
            }
            if let Err(e) = notifier.watchdog() {
                tracing::warn!(error = %e, "could not send the watchdog ping");
            }
        } else {
            // Skipping the ping is the point: systemd restarts a daemon
            // whose loops have stopped.
            // The names are in the text too: `journalctl -u mesero` shows
            // only the message, the fields need `-o verbose`.
            tracing::warn!(
                stale = ?stale,
                "not checking in: {}; withholding the watchdog ping (systemd will restart mesero)",
                stale.join(", ")
            );
            was_stale = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn liveness_names_stale_loops() {
        let l = Liveness::new(DEFAULT_BEAT);
        assert!(l.stale().is_empty());
        let http = l.register("http");
        let sensor = l.register("sensor:pir-12");
        // Synthetic "now" instead of sleeping: deterministic under load.
        let reg = &l.inner;
        let now = reg.now_ms();
        assert!(reg.stale(now, Duration::from_secs(1)).is_empty());
        sensor.slot.last_beat_ms.store(0, Ordering::Relaxed);
        http.slot
            .last_beat_ms
            .store(now + 10_000, Ordering::Relaxed);
        assert_eq!(
            reg.stale(now + 5_000, Duration::from_secs(1)),
            vec!["sensor:pir-12".to_string()]
        );
        sensor.beat();
        assert!(sensor.slot.last_beat_ms.load(Ordering::Relaxed) >= now);
    }

    #[test]
    fn a_dropped_heartbeat_stays_registered() {
        let l = Liveness::new(DEFAULT_BEAT);
        let a = l.register("a");
        a.slot.last_beat_ms.store(0, Ordering::Relaxed);
        drop(a); // e.g. the task panicked: must keep counting as stale
        let now = l.inner.now_ms() + 10_000;
        assert_eq!(l.inner.stale(now, Duration::from_secs(1)), vec!["a"]);
    }

    /// Paused time: the clock only moves to the next timer, so each tick
    /// lands exactly on its deadline and the offsets can be compared as is.
    #[tokio::test(start_paused = true)]
    async fn tick_fires_every_beat_period() {
        let ms = Duration::from_millis;
        let l = Liveness::new(ms(10));
        let mut hb = l.register("loop");
        let started = tokio::time::Instant::now();
        let mut ticks = Vec::new();
        for _ in 0..3 {
            hb.tick().await;
            ticks.push(started.elapsed());
        }
        // One period after the first call, not at once, then every period.
        assert_eq!(ticks, [ms(10), ms(20), ms(30)]);

        // A stall of 3.5 periods (a slow iteration): one tick at once, then
        // a full period after it, not a burst of the missed ones.
        tokio::time::sleep(ms(35)).await;
        ticks.clear();
        for _ in 0..2 {
            hb.tick().await;
            ticks.push(started.elapsed());
        }
        assert_eq!(ticks, [ms(65), ms(75)]);
    }

    #[cfg(debug_assertions)]
    #[tokio::test]
    async fn a_hung_loop_never_ticks_again() {
        let l = Liveness::new(Duration::from_millis(10));
        let mut hb = l.register("writer");
        let _other = l.register("http");
        assert_eq!(l.hang("writer"), 1);
        assert_eq!(l.hang("nobody"), 0);
        let ticked = tokio::time::timeout(Duration::from_millis(100), hb.tick()).await;
        assert!(ticked.is_err(), "a hung loop must not tick");
    }

    async fn recv_ping(
        sock: &tokio::net::UnixDatagram,
        buf: &mut [u8; 64],
    ) -> Result<io::Result<usize>, tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(5), sock.recv(buf)).await
    }

    #[tokio::test]
    async fn watchdog_pings_only_while_loops_beat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = tokio::net::UnixDatagram::bind(&path).expect("bind");
        let timeout = Duration::from_millis(400);
        let liveness = Liveness::new(timeout / 4);
        let cancel = CancellationToken::new();
        // A loop that checks in as the daemon's loops do, until paused.
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let looping = {
            let (mut hb, paused) = (liveness.register("http"), Arc::clone(&paused));
            tokio::spawn(async move {
                loop {
                    hb.tick().await;
                    if !paused.load(Ordering::Relaxed) {
                        hb.beat();
                    }
                }
            })
        };
        let task = tokio::spawn(run_watchdog(
            Notifier::with_path(&path),
            liveness.clone(),
            timeout,
            cancel.clone(),
        ));
        let mut buf = [0u8; 64];
        // Alive: pings arrive.
        for _ in 0..3 {
            let n = recv_ping(&sock, &mut buf)
                .await
                .expect("ping in time")
                .expect("recv");
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
        // The loop stops checking in: once it is stale, no more pings.
        paused.store(true, Ordering::Relaxed);
        while liveness.stale().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Drop pings sent before that (decided while the loop was fresh).
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(50), sock.recv(&mut buf)).await
        {}
        let silent = tokio::time::timeout(timeout, sock.recv(&mut buf)).await;
        assert!(silent.is_err(), "no ping while a loop is stale");
        // It checks in again: pings resume.
        paused.store(false, Ordering::Relaxed);
        let n = recv_ping(&sock, &mut buf)
            .await
            .expect("ping resumes")
            .expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends on cancel")
            .expect("no panic");
        looping.abort();
    }
}
