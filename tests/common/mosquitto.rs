//! A real Mosquitto broker (Debian's `mosquitto`) as the upstream of the
//! bridge tests, started on a loopback port with the per-site users and
//! ACL that docs/MULTI-SITE.md documents, and a test CA made with the
//! `openssl` command.
//!
//! Without `mosquitto` installed the suites using it pass without running,
//! with one line on the terminal saying so (and in `MESERO_SKIPPED_SUITES`
//! when set); `MESERO_REQUIRE_MOSQUITTO=1` (`.ci/run`) makes that a failure.

use super::PATIENCE;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// The upstream users: one per site (the user name is the site id, so the
/// ACL's `pattern` gives each its own prefix) and HQ, which only reads.
pub const SITE_USER: (&str, &str) = ("test", "test-pw");
pub const OTHER_SITE: (&str, &str) = ("other", "other-pw");
pub const HQ: (&str, &str) = ("hq", "hq-pw");

/// The ACL of docs/MULTI-SITE.md, word for word.
pub const ACL: &str = "\
# HQ reads every site.
user hq
topic read mesero/#

# Every other user is a site whose user name is its site.id: it writes
# only under its own prefix, and reads nothing.
pattern write mesero/%u/#
";

/// Whether `tool` can run (see the module doc); `what` names the suite.
pub fn available(suite: &str, tool: &str, package: &str) -> bool {
    if Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    if std::env::var("MESERO_REQUIRE_MOSQUITTO").is_ok_and(|v| v == "1") {
        panic!("MESERO_REQUIRE_MOSQUITTO=1 but {tool} is not installed");
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let line =
            format!("{suite}: skipped, {tool} is not installed (apt-get install {package})\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(path) = std::env::var_os("MESERO_SKIPPED_SUITES") {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .unwrap_or_else(|e| panic!("MESERO_SKIPPED_SUITES={path:?}: {e}"));
        }
    });
    false
}

/// A port that was free a moment ago (Mosquitto cannot be told port 0 and
/// say which it got).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running Mosquitto; killed when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
    listener: String,
}

impl Mosquitto {
    /// Starts Mosquitto in `dir` on `port` with the users above and
    /// [`ACL`]; `listener` is extra listener lines (TLS files).
    pub fn start(dir: &Path, port: u16, listener: &str) -> Mosquitto {
        std::fs::create_dir_all(dir).expect("mosquitto dir");
        let passwd = dir.join("passwd");
        for (i, (user, password)) in [SITE_USER, OTHER_SITE, HQ].iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            let ok = cmd
                .arg("-b")
                .arg(&passwd)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd")
                .success();
            assert!(ok, "mosquitto_passwd failed");
        }
        std::fs::write(dir.join("acl"), ACL).expect("acl");
        let mut m = Mosquitto {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_owned(),
            listener: listener.to_string(),
        };
        m.restart();
        m
    }

    /// Starts it (again) on the same port, with what it persisted.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = self.dir.display();
        // As root, Mosquitto would switch to the `mosquitto` user, which
        // cannot read the test's files.
        let user = if is_root() { "user root\n" } else { "" };
        let conf = format!(
            "{user}listener {port} 127.0.0.1\n{listener}\nallow_anonymous false\n\
             password_file {dir}/passwd\nacl_file {dir}/acl\n\
             persistence true\npersistence_location {dir}/\nautosave_interval 1\n\
             max_queued_messages 10000\nlog_dest stderr\nlog_type error\nlog_type warning\n",
            port = self.addr.port(),
            listener = self.listener,
        );
        let path = self.dir.join("mosquitto.conf");
        std::fs::write(&path, conf).expect("mosquitto.conf");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect(self.addr).is_err() {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    panic!("mosquitto exited at start: {status}");
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto never listened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM (it saves its persistent sessions) and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::send_signal(child.id(), "TERM");
            let deadline = std::time::Instant::now() + PATIENCE;
            while child.try_wait().expect("try_wait").is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "mosquitto did not stop"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// A test CA and two server certificates signed by it, made with the
/// `openssl` command: `server.pem` for 127.0.0.1/localhost and
/// `wrong.pem` for another name. `None` (skipped) without openssl.
pub struct TestCa {
    pub ca: PathBuf,
    pub dir: PathBuf,
}

impl TestCa {
    pub fn make(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("ca dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mesero test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        for (name, san) in [
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            ("wrong", "subjectAltName=DNS:other.example"),
        ] {
            let (key, csr, pem, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            std::fs::write(
                dir.join(&ext),
                format!("{san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
            )
            .expect("ext");
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend([
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=mesero test server",
            ]);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        TestCa {
            ca: dir.join("ca.pem"),
            dir: dir.to_owned(),
        }
    }

    /// Mosquitto listener lines serving certificate `name` (`server`, `wrong`).
    pub fn listener(&self, name: &str) -> String {
        let d = self.dir.display();
        format!("cafile {d}/ca.pem\ncertfile {d}/{name}.pem\nkeyfile {d}/{name}.key\n")
    }
}
