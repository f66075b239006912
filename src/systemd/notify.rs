//! The `sd_notify` datagram protocol: `READY=1`, `STATUS=`, `WATCHDOG=1`,
//! `STOPPING=1` sent to `$NOTIFY_SOCKET`, and the watchdog timeout from
//! `$WATCHDOG_USEC`/`$WATCHDOG_PID`. Why this is not the `sd-notify`
//! crate is in the [parent module](super)'s doc.
//!
//! [`Notifier::from_env`] reads `$NOTIFY_SOCKET` once; tests build one for
//! a socket they bound, so they never touch the (process-global)
//! environment. Each message goes out on a fresh non-blocking socket.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
