//! A minimal W3C WebDriver client over reqwest for Debian's `chromedriver`
//! driving Debian's headless `chromium`: sessions, navigation, script
//! execution, clicks, pointer drags, screenshots, and Chrome's CDP
//! passthrough (`goog/cdp/execute`). Nothing downloaded, no browser
//! crate.
//!
//! Each [`Driver`] gets its own `HOME` with an NSS database
//! (`$HOME/.pki/nssdb`, where Chromium on Linux reads its trusted roots)
//! holding only the test daemon's CA, made with Debian's `certutil`
//! (libnss3-tools): the browsers open the app over HTTPS as a tablet
//! that installed the CA does, with no certificate-error flag.
//!
//! Without chromium or chromedriver the suite passes without running,
//! with one line on the terminal (and in `MESERO_SKIPPED_SUITES` when
//! set); under `CI=true` (`.ci/run`) that is a failure instead.

use super::common::PATIENCE;
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CERTUTIL: &str = "/usr/bin/certutil";

/// Whether the browser suite can run (see the module doc).
pub fn available() -> bool {
    let found = [CHROMIUM, CHROMEDRIVER, CERTUTIL]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but {CHROMIUM}, {CHROMEDRIVER} or {CERTUTIL} is missing (apt-get install chromium chromium-driver libnss3-tools)"
        );
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let line = "browser: skipped, chromium, chromedriver or certutil is not installed (apt-get install chromium chromium-driver libnss3-tools)\n";
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

/// A running chromedriver on a port it chose. Dropped (also when a test
/// panics before it quit its sessions), it ends every session it opened,
/// so no browser outlives the test, then stops.
pub struct Driver {
    child: Child,
    /// The browsers' `HOME`, with the NSS database trusting the CA.
    _home: tempfile::TempDir,
    base: String,
    port: u16,
    http: reqwest::Client,
    sessions: std::sync::Mutex<Vec<String>>,
}

/// A fresh `HOME` whose NSS database trusts the CA at `ca_pem` (for
/// TLS server authentication: `-t "C,,"`).
fn home_trusting(ca_pem: &std::path::Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("browser home");
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("nssdb dir");
    let db = format!("sql:{}", nssdb.display());
    let run = |args: &[&str]| {
        let out = Command::new(CERTUTIL)
            .args(args)
            .output()
            .expect("run certutil");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db, "--empty-password"]);
    let ca = ca_pem.display().to_string();
    run(&[
        "-A",
        "-d",
        &db,
        "-n",
        "mesero-test-ca",
        "-t",
        "C,,",
        "-i",
        &ca,
    ]);
    home
}

impl Driver {
    /// A chromedriver whose browsers trust the CA at `ca_pem` (and no
    /// other: their `HOME` is new).
    pub fn start(ca_pem: &std::path::Path) -> Driver {
        let home = home_trusting(ca_pem);
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .env("HOME", home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let stdout = child.stdout.take().expect("stdout");
        let mut port = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                break;
            }
        }
        let port = port.expect("chromedriver printed its port");
        Driver {
            child,
            _home: home,
            base: format!("http://127.0.0.1:{port}"),
            port,
            sessions: std::sync::Mutex::new(Vec::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// A new browser (its own profile: a separate context) with a
    /// `width`x`height` viewport.
    pub async fn session(&self, width: u32, height: u32) -> Session {
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--lang=es".into(),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "unhandledPromptBehavior": "accept",
            // The default, said out loud: a certificate the browser does
            // not trust is an error page, never accepted (checked: with
            // the CA in the NSS store untrusted, `-t ",,"`, test 1 fails).
            "acceptInsecureCerts": false,
        }}});
        let res: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        if let Ok(mut open) = self.sessions.lock() {
            open.push(id.clone());
        }
        let session = Session {
            http: self.http.clone(),
            url: format!("{}/session/{id}", self.base),
        };
        // The viewport exactly (the window size includes no browser UI in
        // headless mode, but make sure).
        session
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
            )
            .await;
        session
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Blocking and by hand (no runtime in a destructor): one DELETE
        // per session; one already quit answers an error, which is fine.
        let open = self.sessions.lock().map(|o| o.clone()).unwrap_or_default();
        for id in open {
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if conn.write_all(request.as_bytes()).is_ok() {
                    let _ = std::io::Read::read_to_end(&mut conn, &mut Vec::new());
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
    }

    /// A command; a WebDriver error as `Err("<error>: <message>")`.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver json");
        if let Some(err) = res["value"]["error"].as_str() {
            return Err(format!("{err}: {}", res["value"]["message"]));
        }
        Ok(res["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`), returns
    /// what it returns.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls `script` every 50 ms until it returns something truthy (not
    /// null/false/""/0); panics with `what` after [`PATIENCE`].
    pub async fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.js(script, json!([])).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                // What the page said to its user (errors are toasts).
                let toasts = self
                    .js("return document.body.dataset.lastMessage ?? '';", json!([]))
                    .await;
                panic!(
                    "the page never showed {what} (last: {v}; last message on the page: {toasts})"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element matching `css` (waiting for it), as a WebDriver ref.
    pub async fn find(&self, css: &str) -> Value {
        let probe = format!("return document.querySelector({css:?}) !== null");
        self.wait(&format!("an element {css}"), &probe).await;
        self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
    }

    fn element_id(el: &Value) -> String {
        el.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element reference")
            .to_string()
    }

    /// A real click (WebDriver's, so pointer events and focus as a tap).
    /// An element the page re-rendered between finding and clicking it
    /// is found again.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let el = self.find(css).await;
            let id = Self::element_id(&el);
            let done = self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{id}/click"),
                    Some(json!({})),
                )
                .await;
            match done {
                Ok(_) => return,
                Err(e) if e.starts_with("stale element") => {
                    assert!(tokio::time::Instant::now() < deadline, "click {css}: {e}");
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        let id = Self::element_id(&el);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses on the element matching `css`, moves by (`dx`, `dy`) pixels
    /// in steps, releases: a drag with real pointer events.
    pub async fn drag(&self, css: &str, dx: i64, dy: i64) {
        let el = self.find(css).await;
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "origin": el, "x": 0, "y": 0}),
            json!({"type": "pointerDown", "button": 0}),
        ];
        for step in 1..=5 {
            actions.push(json!({"type": "pointerMove", "duration": 20, "origin": "pointer",
                "x": dx / 5 + if step == 5 { dx % 5 } else { 0 }, "y": dy / 5 + if step == 5 { dy % 5 } else { 0 }}));
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "pointer", "id": "finger", "parameters": {"pointerType": "mouse"}, "actions": actions}]})),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("screenshot is base64"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

/// Standard base64 (what WebDriver's screenshot returns).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
