//! systemd integration without extra crates: the `sd_notify` datagram
//! protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) and a
//! liveness registry that decides whether the watchdog may be fed.
//!
//! Design:
//! - [`Notifier`] holds where notifications go. [`Notifier::from_env`] reads
//!   `$NOTIFY_SOCKET` once; tests build one for a socket they bound, so they
//!   never touch the (process-global) environment. The daemon gets its
//!   notifier passed in ([`Supervision`]); nothing here is global.
//! - The environment is left as is (no `unset_environment` like C's
//!   `sd_notify(1, ...)`): mutating the environment of a multi-threaded
//!   process is unsound, and `NotifyAccess=main` already ignores children.
//! - The watchdog is fed only while every registered long-lived loop has
//!   checked in recently. A hung loop (deadlock, blocked I/O, a task that
//!   panicked) therefore stops the pings and systemd restarts the daemon,
//!   instead of a half-dead process answering `/healthz` forever.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often loops check in when there is no watchdog (not under systemd,
/// or `WatchdogSec=` unset). Only the watchdog reads the beats, so this is
/// merely cheap, not important.
pub const DEFAULT_BEAT: Duration = Duration::from_secs(5);

/// Where `sd_notify` messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `NOTIFY_SOCKET` unset: not started by systemd (or `Type=simple`);
    /// every notification is a successful no-op.
    Disabled,
    /// A socket file, e.g. `/run/systemd/notify`.
    Path(PathBuf),
    /// A Linux abstract socket (`@name` in `NOTIFY_SOCKET`; the `@` stands
    /// for the leading NUL byte and is not part of the name).
    Abstract(Vec<u8>),
    /// Something we cannot send to (relative path, `vsock:` address, ...).
    /// Kept so that `notify` reports it instead of silently doing nothing.
    Unsupported(String),
}

/// Sends `sd_notify` state strings to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Target,
}

impl Notifier {
    /// A notifier that does nothing (not running under systemd).
    pub fn disabled() -> Self {
        Self {
            target: Target::Disabled,
        }
    }

    /// A notifier for a socket file (tests, or a manager other than systemd).
    pub fn with_path(path: impl Into<PathBuf>) -> Self {
        Self {
            target: Target::Path(path.into()),
        }
    }

    /// Reads `$NOTIFY_SOCKET` (the variable is not modified).
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) => Self::from_socket_spec(&value),
            None => Self::disabled(),
        }
    }

    /// Parses a `NOTIFY_SOCKET` value: `/abs/path` or `@abstract`.
    /// An empty value means "disabled", as in libsystemd.
    pub fn from_socket_spec(spec: &OsStr) -> Self {
        let bytes = spec.as_bytes();
        let target = match bytes.first() {
            None => Target::Disabled,
            Some(b'@') => Target::Abstract(bytes[1..].to_vec()),
            Some(b'/') => Target::Path(PathBuf::from(spec)),
            Some(_) => Target::Unsupported(spec.to_string_lossy().into_owned()),
        };
        Self { target }
    }

    /// Whether notifications go anywhere (a manager asked for them).
    pub fn is_enabled(&self) -> bool {
        self.target != Target::Disabled
    }

    /// Sends one datagram with `state` (newline-separated `KEY=VALUE`
    /// assignments, e.g. `"READY=1\nSTATUS=serving"`). `Ok(())` without
    /// sending anything when disabled.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        if state.is_empty() {
            // systemd ignores empty datagrams; an empty state is a caller bug.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty sd_notify state",
            ));
        }
        // A fresh unbound socket per message: notifications are rare (a
        // watchdog ping every few seconds at most), and this keeps the
        // notifier free of file descriptors and shareable without locks.
        // Non-blocking: a unix datagram send blocks while the receiver's
        // queue is full, and this is called from async tasks; if the
        // manager is not reading, losing a message (and getting an error)
        // is better than stalling a runtime worker thread.
        let sock = || -> io::Result<UnixDatagram> {
            let sock = UnixDatagram::unbound()?;
            sock.set_nonblocking(true)?;
            Ok(sock)
        };
        let sent = match &self.target {
            Target::Disabled => return Ok(()),
            Target::Path(path) => sock()?.send_to(state.as_bytes(), path)?,
            Target::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                sock()?.send_to_addr(state.as_bytes(), &addr)?
            }
            Target::Unsupported(spec) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("unsupported NOTIFY_SOCKET address {spec:?}"),
                ));
            }
        };
        // Datagrams are all-or-nothing; a short count would mean a mangled
        // message, so treat it as an error rather than trust it.
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write on the notify socket",
            ));
        }
        Ok(())
    }

    /// `READY=1` with a first `STATUS=`: startup is complete (database
    /// open, listeners bound). With `Type=notify`, `systemctl start`
    /// returns and dependent units start only after this.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// `STOPPING=1` with a `STATUS=`: shutdown has begun.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)))
    }

    /// `STATUS=<text>`: the line shown by `systemctl status`.
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", one_line(text)))
    }

    /// `WATCHDOG=1`: one watchdog keep-alive ping.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }
}

/// Newlines would start a new assignment in the protocol.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The watchdog timeout systemd expects us to honour (`WatchdogSec=`), from
/// `$WATCHDOG_USEC`. `None` when unset, zero, unparsable, or when
/// `$WATCHDOG_PID` names a process other than ours (the variables were
/// inherited from a parent and are not meant for us).
pub fn watchdog_timeout() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Pure part of [`watchdog_timeout`], testable without the environment.
fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        // Set but unparsable is treated like "not for us", as libsystemd does.
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the daemon tells systemd, and how often it must prove it is alive.
#[derive(Debug, Clone)]
pub struct Supervision {
    pub notifier: Notifier,
    /// `WatchdogSec=`; `None` means no watchdog pings.
    pub watchdog: Option<Duration>,
}

impl Supervision {
    /// As systemd asked: `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env();
        let watchdog = watchdog_timeout().filter(|_| notifier.is_enabled());
        Self { notifier, watchdog }
    }

    /// Not supervised (in-process tests).
    pub fn none() -> Self {
        Self {
            notifier: Notifier::disabled(),
            watchdog: None,
        }
    }

    /// How often loops check in: four beats per watchdog timeout. A loop
    /// is stale after missing two beats (half the timeout), so one slow
    /// iteration is forgiven and a hang is still caught in time (see
    /// [`run_watchdog`]).
    pub fn beat_every(&self) -> Duration {
        self.watchdog.map_or(DEFAULT_BEAT, |t| t / 4)
    }
}

// ---------------------------------------------------------------------------
// Liveness registry

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
/// of [`Supervision::beat_every`] that is "silent for half the timeout").
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
    use std::sync::atomic::AtomicUsize;

    fn bound_socket() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (dir, path, sock)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("recv");
        String::from_utf8(buf[..n].to_vec()).expect("utf8")
    }

    #[test]
    fn sends_to_a_path_socket() {
        let (_dir, path, sock) = bound_socket();
        let n = Notifier::from_socket_spec(path.as_os_str());
        assert_eq!(n, Notifier::with_path(&path));
        assert!(n.is_enabled());
        n.ready("up").expect("ready");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up");
        n.watchdog().expect("watchdog");
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping("bye").expect("stopping");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=bye");
    }

    #[test]
    fn status_is_one_line() {
        let (_dir, path, sock) = bound_socket();
        Notifier::with_path(&path)
            .status("12 tables\n3 occupied\r\nMQTT up")
            .expect("status");
        assert_eq!(recv(&sock), "STATUS=12 tables 3 occupied  MQTT up");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        // Unique per process and test so parallel runs cannot collide.
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mesero-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = Notifier::from_socket_spec(OsStr::new(&format!("@{name}")));
        n.watchdog().expect("watchdog");
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn disabled_is_a_successful_no_op() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x").expect("no-op");
        n.status("x").expect("no-op");
        assert!(!Notifier::from_socket_spec(OsStr::new("")).is_enabled());
    }

    #[test]
    fn unsupported_and_missing_sockets_are_errors() {
        let n = Notifier::from_socket_spec(OsStr::new("vsock:2:1234"));
        assert_eq!(
            n.watchdog().map_err(|e| e.kind()),
            Err(io::ErrorKind::Unsupported)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = Notifier::with_path(dir.path().join("nobody-listens"));
        assert!(gone.watchdog().is_err());
        assert!(Notifier::disabled().notify("").is_err());
    }

    #[test]
    fn full_receiver_queue_is_an_error_not_a_hang() {
        // Nobody reads this socket: once its queue (net.unix.max_dgram_qlen)
        // is full, sends must fail with WouldBlock instead of blocking.
        let (_dir, path, _sock) = bound_socket();
        let n = Notifier::with_path(&path);
        let errors: Vec<io::ErrorKind> = (0..2000)
            .filter_map(|_| n.watchdog().err().map(|e| e.kind()))
            .collect();
        assert!(!errors.is_empty(), "queue never filled");
        assert!(errors.iter().all(|k| *k == io::ErrorKind::WouldBlock));
    }

    #[test]
    fn parses_watchdog_env() {
        let d = |s| Some(Duration::from_micros(s));
        assert_eq!(parse_watchdog(Some("30000000"), None, 7), d(30_000_000));
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            d(30_000_000)
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("30000000"), Some("x"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("-5"), None, 7), None);
        assert_eq!(parse_watchdog(Some("abc"), None, 7), None);
        assert_eq!(parse_watchdog(None, Some("7"), 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    #[test]
    fn beat_period_follows_the_watchdog() {
        let mut s = Supervision::none();
        assert_eq!(s.beat_every(), DEFAULT_BEAT);
        s.watchdog = Some(Duration::from_secs(30));
        assert_eq!(s.beat_every(), Duration::from_millis(7500));
    }

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
