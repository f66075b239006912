//! systemd integration without extra crates: the `sd_notify` datagram
//! protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) and a
//! liveness registry that decides whether the watchdog may be fed.
//!
//! Design:
//! - [`Notifier`] holds where notifications go. [`Notifier::from_env`] reads
//!   `$NOTIFY_SOCKET` once; [`Notifier::with_path`] /
//!   [`Notifier::with_abstract_name`] take the address explicitly, so tests
//!   never touch the (process-global, shared between test threads)
//!   environment. The free functions ([`notify`], [`status`], ...) use one
//!   process-wide notifier built from the environment on first use.
//! - The environment is left as is (no `unset_environment` like C's
//!   `sd_notify(1, ...)`): mutating the environment of a multi-threaded
//!   process is unsound, and children we spawn (none today) are not in the
//!   main PID anyway, so `NotifyAccess=main` already ignores them.
//! - The watchdog is fed only while every registered long-lived loop has
//!   beaten recently. A hung loop (deadlock, blocked I/O, a task that
//!   panicked) therefore stops the pings and systemd restarts the daemon,
//!   instead of a half-dead process answering `/healthz` forever.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

    /// A notifier for an abstract socket; `name` is without the leading `@`.
    pub fn with_abstract_name(name: impl Into<Vec<u8>>) -> Self {
        Self {
            target: Target::Abstract(name.into()),
        }
    }

    /// Reads `$NOTIFY_SOCKET` (once; the variable is not modified).
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

    /// Whether notifications go anywhere (i.e. we run under a manager that
    /// asked for them).
    pub fn is_enabled(&self) -> bool {
        self.target != Target::Disabled
    }

    /// The notify socket's path when it is a file (diagnostics only).
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Path(p) => Some(p),
            _ => None,
        }
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
        let sent = match &self.target {
            Target::Disabled => return Ok(()),
            Target::Path(path) => UnixDatagram::unbound()?.send_to(state.as_bytes(), path)?,
            Target::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?
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

    /// `READY=1`: startup is complete (config loaded, database open,
    /// listeners bound). With `Type=notify`, `systemctl start` returns and
    /// dependent units start only after this.
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// `STOPPING=1`: shutdown has begun (shown by `systemctl status`).
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// `STATUS=<text>`: the one-line status shown by `systemctl status`.
    /// Newlines would start a new assignment in the protocol, so they are
    /// replaced by spaces.
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", one_line(text)))
    }

    /// `WATCHDOG=1`: one watchdog keep-alive ping.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks for more time for the current start or
    /// stop phase (e.g. a long database migration on a slow SD card, which
    /// would otherwise hit `TimeoutStartSec=`).
    pub fn extend_timeout(&self, by: Duration) -> io::Result<()> {
        self.notify(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()))
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The process-wide notifier, built from the environment on first use.
pub fn notifier() -> &'static Notifier {
    static NOTIFIER: OnceLock<Notifier> = OnceLock::new();
    NOTIFIER.get_or_init(Notifier::from_env)
}

/// Sends `state` to `$NOTIFY_SOCKET`; a no-op returning `Ok` when unset.
pub fn notify(state: &str) -> io::Result<()> {
    notifier().notify(state)
}

/// Sends `READY=1` (see [`Notifier::ready`]).
pub fn ready() -> io::Result<()> {
    notifier().ready()
}

/// Sends `STOPPING=1` (see [`Notifier::stopping`]).
pub fn stopping() -> io::Result<()> {
    notifier().stopping()
}

/// Sends `STATUS=<text>` (see [`Notifier::status`]).
pub fn status(text: &str) -> io::Result<()> {
    notifier().status(text)
}

/// Whether we were started by systemd with notifications on (`Type=notify`);
/// the daemon uses it to pick journald-friendly logging and to decide
/// whether to start the watchdog task.
pub fn under_systemd() -> bool {
    notifier().is_enabled()
}

/// The watchdog timeout systemd expects us to honour (`WatchdogSec=`), from
/// `$WATCHDOG_USEC`. `None` when unset, zero, unparsable, or when
/// `$WATCHDOG_PID` is set to a process other than ours (the variables were
/// inherited from a parent and are not meant for us).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Pure part of [`watchdog_interval`], testable without the environment.
pub fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        // Set but unparsable is treated like "not for us", as libsystemd does.
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

// ---------------------------------------------------------------------------
// Liveness registry

/// Registry of the daemon's long-lived loops (sensor supervisors, broker,
/// HTTP, writer, ...). Cheap to clone; all clones share the same registry.
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
    loops: Mutex<Vec<Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    /// Milliseconds since `epoch` of the last beat.
    last_beat_ms: AtomicU64,
}

/// One loop's handle. Call [`Heartbeat::beat`] every iteration.
///
/// Dropping the handle does NOT unregister the loop: a task that panics or
/// is aborted drops its handle too, and that is exactly the case the
/// watchdog must catch. A loop that ends on purpose (e.g. a sensor removed
/// from the config) calls [`Heartbeat::retire`].
#[derive(Debug)]
pub struct Heartbeat {
    slot: Arc<Slot>,
    registry: Arc<Registry>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Registry {
                epoch: Instant::now(),
                loops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Registers a loop under `name` (shown in logs when it goes stale) and
    /// counts it as having just beaten. Names need not be unique, but
    /// unique names make the logs useful (e.g. `sensor:pir-12`).
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let slot = Arc::new(Slot {
            name: name.into(),
            last_beat_ms: AtomicU64::new(self.inner.now_ms()),
        });
        self.inner.lock().push(Arc::clone(&slot));
        Heartbeat {
            slot,
            registry: Arc::clone(&self.inner),
        }
    }

    /// `Ok(())` when every registered loop has beaten within `max_age`,
    /// otherwise the names of those that have not. An empty registry is
    /// alive (nothing has started yet).
    pub fn all_alive(&self, max_age: Duration) -> Result<(), Vec<String>> {
        let stale = self.inner.stale(self.inner.now_ms(), max_age);
        if stale.is_empty() { Ok(()) } else { Err(stale) }
    }

    /// Each registered loop with the time since its last beat (for
    /// `/api/v1/stats` and diagnostics), in registration order.
    pub fn ages(&self) -> Vec<(String, Duration)> {
        let now = self.inner.now_ms();
        self.inner
            .lock()
            .iter()
            .map(|s| {
                let last = s.last_beat_ms.load(Ordering::Relaxed);
                (
                    s.name.clone(),
                    Duration::from_millis(now.saturating_sub(last)),
                )
            })
            .collect()
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        // u64 milliseconds overflow after ~585 million years; saturate anyway
        // rather than cast blindly.
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        // The list is only pushed to / retained; a panic while holding the
        // lock cannot leave it half-updated, so a poisoned lock is safe to use.
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

    /// The name this loop was registered under.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// Unregisters the loop: it ended on purpose and must no longer hold
    /// back the watchdog.
    pub fn retire(self) {
        self.registry.lock().retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

// ---------------------------------------------------------------------------
// Watchdog task

/// Feeds the systemd watchdog through the process-wide notifier. `interval`
/// is the watchdog timeout ([`watchdog_interval`]): pings go out every
/// `interval / 2` (the rate `sd_watchdog_enabled(3)` recommends), and a loop
/// counts as stale when it has not beaten for `interval / 2` either. Returns
/// when `cancel` fires.
///
/// Loops that can block for long (waiting for a GPIO edge, an accept, an
/// MQTT packet) must wake up on a timer and beat at least every few seconds.
pub async fn run_watchdog(liveness: Liveness, interval: Duration, cancel: CancellationToken) {
    let half = interval / 2;
    run_watchdog_with(notifier(), &liveness, half, half, cancel).await;
}

/// [`run_watchdog`] with an explicit notifier, ping period and staleness
/// threshold (tests, tuning).
pub async fn run_watchdog_with(
    notifier: &Notifier,
    liveness: &Liveness,
    ping_every: Duration,
    max_age: Duration,
    cancel: CancellationToken,
) {
    // tokio::time::interval panics on a zero period; a zero WatchdogSec is
    // filtered out by parse_watchdog, but guard anyway.
    let period = ping_every.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    // After a stall (e.g. the runtime was starved) ping once, not in a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stale = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match liveness.all_alive(max_age) {
            Ok(()) => {
                if was_stale {
                    tracing::info!("all loops alive again; resuming watchdog pings");
                    was_stale = false;
                }
                if let Err(e) = notifier.watchdog() {
                    tracing::warn!(error = %e, "could not send the watchdog ping");
                }
            }
            Err(stale) => {
                // Skipping the ping is the point: systemd restarts a
                // daemon whose loops have stopped.
                tracing::warn!(
                    stale = ?stale,
                    max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX),
                    "loops not alive; withholding the watchdog ping (systemd will restart mesero)"
                );
                was_stale = true;
            }
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
        let n = Notifier::with_path(&path);
        assert!(n.is_enabled());
        n.ready().expect("ready");
        assert_eq!(recv(&sock), "READY=1");
        n.notify("WATCHDOG=1\nSTATUS=x").expect("notify");
        assert_eq!(recv(&sock), "WATCHDOG=1\nSTATUS=x");
        n.stopping().expect("stopping");
        assert_eq!(recv(&sock), "STOPPING=1");
        n.extend_timeout(Duration::from_secs(2)).expect("extend");
        assert_eq!(recv(&sock), "EXTEND_TIMEOUT_USEC=2000000");
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
        let spec = format!("@{name}");
        let n = Notifier::from_socket_spec(OsStr::new(&spec));
        assert_eq!(n, Notifier::with_abstract_name(name.as_bytes()));
        n.watchdog().expect("watchdog");
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn disabled_is_a_successful_no_op() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready().expect("no-op");
        n.status("x").expect("no-op");
        assert!(!Notifier::from_socket_spec(OsStr::new("")).is_enabled());
    }

    #[test]
    fn unsupported_and_missing_sockets_are_errors() {
        let n = Notifier::from_socket_spec(OsStr::new("vsock:2:1234"));
        assert_eq!(
            n.ready().map_err(|e| e.kind()),
            Err(io::ErrorKind::Unsupported)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = Notifier::with_path(dir.path().join("nobody-listens"));
        assert!(gone.ready().is_err());
        assert!(Notifier::disabled().notify("").is_err());
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
    fn liveness_names_stale_loops() {
        let l = Liveness::new();
        assert_eq!(l.all_alive(Duration::ZERO), Ok(()));
        let http = l.register("http");
        let sensor = l.register("sensor:pir-12");
        assert_eq!(http.name(), "http");
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
        assert_eq!(l.ages().len(), 2);
    }

    #[test]
    fn dropped_heartbeat_stays_registered_retired_does_not() {
        let l = Liveness::new();
        let a = l.register("a");
        let b = l.register("b");
        drop(a); // e.g. the task panicked: must keep counting as stale
        b.retire();
        let names: Vec<String> = l.ages().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["a".to_string()]);
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
        let notifier = Notifier::with_path(&path);
        let liveness = Liveness::new();
        let hb = liveness.register("http");
        let cancel = CancellationToken::new();

        let task = {
            let (liveness, cancel) = (liveness.clone(), cancel.clone());
            tokio::spawn(async move {
                run_watchdog_with(
                    &notifier,
                    &liveness,
                    Duration::from_millis(20),
                    Duration::from_millis(300),
                    cancel,
                )
                .await;
            })
        };
        let mut buf = [0u8; 64];
        // Alive: pings arrive.
        for _ in 0..3 {
            hb.beat();
            let n = recv_ping(&sock, &mut buf)
                .await
                .expect("ping in time")
                .expect("recv");
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
        // Stop beating: after max_age the pings stop.
        tokio::time::sleep(Duration::from_millis(600)).await;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), sock.recv(&mut buf)).await
        {}
        let silent = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await;
        assert!(silent.is_err(), "no ping while a loop is stale");
        assert_eq!(
            liveness.all_alive(Duration::from_millis(300)),
            Err(vec!["http".into()])
        );
        // Beat again: pings resume.
        hb.beat();
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
    }
}
