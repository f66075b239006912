//! Fuzz entry points (docs/FUZZING.md): one function per target, each
//! taking the fuzzer's raw bytes.
//!
//! The same functions are the bodies of the libFuzzer targets in `fuzz/`
//! and of the corpus replay in `tests/fuzz_corpora.rs`, so every input the
//! fuzzer kept is re-checked by plain `cargo test`. A function returns
//! normally for any input the daemon handles correctly (accepted or
//! refused); it panics when the code under test panics or when an
//! invariant stated here breaks, which is what the fuzzer reports.
//!
//! Everything is exercised the way the daemon does it, through the same
//! public functions: the MQTT payload parsers, the MQTT session layer's
//! screen in front of rumqttd, the SSE client parser, the real HTTP router on a real SQLite file, the
//! config loader, and the AMG8833 driver on a bus that returns the
//! fuzzer's bytes.

use crate::broker::topics::{
    MAX_DETECTIONS, MAX_PEOPLE, SensorMessage, parse_detections, parse_sensor, parse_set,
};
use crate::config::Config;
use crate::sensors::PollSensor as _;
use crate::sensors::amg8833::{Amg8833, Amg8833Config, PIXELS, PeopleCounter};
use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Packet, Protocol as _, Publish};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

/// One fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` binary and
/// the `fuzz/corpus/<name>/` directory) and its entry function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target; the replay test runs each one's committed corpus.
pub const TARGETS: &[Target] = &[
    ("sensor_payload", sensor_payload),
    ("detections", detections),
    ("set_command", set_command),
    ("mqtt_session", mqtt_session),
    ("sse_client", sse_client),
    ("http_json", http_json),
    ("config_toml", config_toml),
    ("amg8833", amg8833),
];

/// The site of every target that needs one.
const CONFIG: &str = r#"
[site]
id = "fuzz"

[http]
listen = "127.0.0.1:0"

[storage]
path = "unused.db"

[mqtt]
listen = "127.0.0.1:0"

[auth]
anonymous = "viewer"

[[auth.tokens]]
name = "admin"
role = "admin"
token = "admin-token"

[[tables]]
id = 1
zone = "salon"

[[tables]]
id = 2
zone = "terrace"
"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        Config::from_toml(Path::new("fuzz.toml"), CONFIG, [])
            .unwrap_or_else(|e| panic!("the fuzzing config is invalid: {e}"))
    })
}

/// A sensor node's payload (`mesero/<site>/sensors/<id>`).
pub fn sensor_payload(data: &[u8]) {
    check_sensor(parse_sensor(data));
}

fn check_sensor(parsed: Result<SensorMessage, crate::broker::topics::Malformed>) {
    match parsed {
        Ok(SensorMessage::Reading(r)) => {
            if let Some(n) = r.people {
                assert!(n <= MAX_PEOPLE, "people {n} over MAX_PEOPLE");
                assert!(r.present || n == 0, "absent with {n} people");
            }
        }
        Ok(SensorMessage::Offline) => {}
        Err(e) => assert!(!e.0.is_empty(), "an empty error message"),
    }
}

/// A detector's batch (`mesero/<site>/detections`).
pub fn detections(data: &[u8]) {
    check_detections(parse_detections(data));
}

fn check_detections(parsed: Result<Vec<(i64, u32)>, crate::broker::topics::Malformed>) {
    match parsed {
        Ok(batch) => {
            assert!(batch.len() <= MAX_DETECTIONS, "{} entries", batch.len());
            for pair in batch.windows(2) {
                if let [(a, _), (b, _)] = pair {
                    assert!(a < b, "tables not strictly ascending: {a}, {b}");
                }
            }
            for (table, people) in batch {
                assert!(table > 0, "table id {table}");
                assert!(people <= MAX_PEOPLE, "people {people} over MAX_PEOPLE");
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "an empty error message"),
    }
}

/// A staff command (`mesero/<site>/tables/<id>/set`): the input's first
/// line is the topic's `<id>` part, the rest the payload.
pub fn set_command(data: &[u8]) {
    let (id, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // A topic that reached `parse_set` is UTF-8 (checked by the session).
    let Ok(raw_id) = std::str::from_utf8(id) else {
        return;
    };
    check_set(raw_id, payload);
}

fn check_set(raw_id: &str, payload: &[u8]) {
    match parse_set(raw_id, payload) {
        Ok((id, command)) => {
            assert!(id > 0, "table id {id}");
            assert_eq!(raw_id.parse::<i64>().ok(), Some(id), "id from {raw_id:?}");
            if let Some(m) = command.hold_minutes {
                assert!(
                    (0..=crate::tables::MAX_HOLD_MINUTES).contains(&m),
                    "hold_minutes {m}"
                );
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "an empty error message"),
    }
}

/// Raw bytes from an MQTT client through the session layer's screen
/// ([`crate::broker::fuzz_session_bytes`]: the sessions' decoder and
/// packet limit, the topic, will, filter and client-id checks, and the
/// rumqttd functions the router applies to whatever passes). Then every
/// PUBLISH the codec decodes is encoded again as the router does for each
/// subscriber, and must come back unchanged. Peer bytes must never reach a
/// panic in rumqttd.
pub fn mqtt_session(data: &[u8]) {
    crate::broker::fuzz_session_bytes(data);
    let max = config().mqtt.max_payload;
    let mut buf = BytesMut::from(data);
    while let Ok(packet) = V4.read_mut(&mut buf, max) {
        if let Packet::Publish(publish, _) = packet {
            round_trip(publish, max);
        }
    }
}

/// A PUBLISH encoded for a subscriber decodes to the same topic and payload.
fn round_trip(publish: Publish, max: usize) {
    let mut out = BytesMut::new();
    let encoded = V4.write(Packet::Publish(publish.clone(), None), &mut out);
    assert!(
        encoded.is_ok(),
        "a routed PUBLISH cannot be encoded: {encoded:?}"
    );
    match V4.read_mut(&mut out, max.saturating_add(16)) {
        Ok(Packet::Publish(back, _)) => {
            assert_eq!(back.topic, publish.topic, "topic changed on the way out");
            assert_eq!(
                back.payload, publish.payload,
                "payload changed on the way out"
            );
        }
        other => panic!("a routed PUBLISH does not decode again: {other:?}"),
    }
}

/// `mesero watch`'s SSE parser: the first byte picks chunk sizes, the rest
/// is the stream. The same stream cut anywhere (a multi-byte character or
/// a CRLF split across chunks) parses to the same messages as in one piece.
pub fn sse_client(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = crate::sse::SseParser::default().push(stream);
    let mut parser = crate::sse::SseParser::default();
    let mut chunked = Vec::new();
    let mut rest = stream;
    let mut size = usize::from(seed % 7) + 1;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunked.extend(parser.push(chunk));
        rest = tail;
        size = size % 7 + 1;
    }
    assert_eq!(whole, chunked, "chunking changed what was parsed");
}

/// Most requests one `http_json` input makes.
const MAX_REQUESTS: usize = 4;

/// Separates the requests of one `http_json` input (ASCII RS).
const REQUEST_SEPARATOR: u8 = 0x1E;

/// Request bodies against the real HTTP router, on a fresh SQLite file per
/// input (so each input is reproducible on its own). The input is up to
/// [`MAX_REQUESTS`] records separated by [`REQUEST_SEPARATOR`]; each record
/// is a selector byte and the body: `C` creates a table
/// (`POST /api/v1/tables`), `P` patches table 1, `S` sets table 1's state
/// (`PUT .../state`); any other byte picks one of the three and a table id
/// 1..=5 from its value. Every request is the admin's, so only the body
/// decides the answer, which must be a 2xx or a 4xx with the JSON error
/// body, never a 5xx; what was accepted must pass the floor-plan rules.
pub fn http_json(data: &[u8]) {
    runtime().block_on(http_requests(data));
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
    })
}

/// A directory for one input's database, removed on drop (also when the
/// replay test unwinds from a failed input): on tmpfs when there is one, as
/// the fsync of every commit would otherwise dominate the run.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> Scratch {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    Scratch(base.join(format!("mesero-fuzz-{}-{n}", std::process::id())))
}

async fn http_requests(data: &[u8]) {
    use tower::ServiceExt as _;
    let dir = scratch_dir();
    let mut config = config().clone();
    config.storage.path = dir.0.join("mesero.db");
    let config = Arc::new(config);
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let hub = crate::hub::Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = crate::store::Store::open(&config, hub.clone(), Arc::clone(&metrics))
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", config.storage.path.display()));
    let paired = crate::pairing::Paired::load(&store)
        .await
        .unwrap_or_else(|e| panic!("cannot read the pairings: {e}"));
    let app = crate::http::router(crate::http::AppState {
        config: Arc::clone(&config),
        store: store.clone(),
        hub,
        limits: crate::http::Limits::new(&config, Arc::clone(&metrics)),
        metrics,
        sensors: crate::engine::SensorBoard::new(&config),
        shutdown: tokio_util::sync::CancellationToken::new(),
        paired,
        ports: crate::http::tls::Ports {
            http: 8080,
            https: None,
        },
    });
    for record in data.split(|b| *b == REQUEST_SEPARATOR).take(MAX_REQUESTS) {
        let Some((&selector, body)) = record.split_first() else {
            continue;
        };
        let (method, path) = request_line(selector);
        let request = axum::http::Request::builder()
            .method(method)
            .uri(&path)
            .header("authorization", "Bearer admin-token")
            .body(axum::body::Body::from(body.to_vec()))
            .unwrap_or_else(|e| panic!("request {path}: {e}"));
        let response = app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: unreadable response: {e}"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            status.is_success() || status.is_client_error(),
            "{method} {path} answered {status}: {text}"
        );
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{method} {path} answered {status} with non-JSON {text:?}: {e}")
        });
        if status.is_client_error() {
            assert!(
                json["error"]["code"].is_string() && json["error"]["message"].is_string(),
                "{method} {path} answered {status} without the error body: {text}"
            );
        }
    }
    for table in store
        .tables()
        .await
        .unwrap_or_else(|e| panic!("reading the tables back: {e}"))
    {
        let rules = crate::tables::check_number(&table.number)
            .and(crate::tables::check_seats(table.seats))
            .and(crate::tables::check_layout(&table.layout).map_err(|(f, m)| format!("{f}: {m}")));
        assert!(table.id > 0, "table id {}", table.id);
        assert!(
            rules.is_ok(),
            "stored table breaks the rules: {table:?}: {rules:?}"
        );
    }
    store.shutdown().await;
}

fn request_line(selector: u8) -> (&'static str, String) {
    let (kind, id) = match selector {
        b'C' => (0, 1),
        b'P' => (1, 1),
        b'S' => (2, 1),
        other => (other % 3, 1 + (other / 3) % 5),
    };
    match kind {
        0 => ("POST", "/api/v1/tables".to_string()),
        1 => ("PATCH", format!("/api/v1/tables/{id}")),
        _ => ("PUT", format!("/api/v1/tables/{id}/state")),
    }
}

/// A config file and its environment: the input up to the first NUL is
/// the TOML text, the rest `NAME=value` lines (a process environment has
/// no NUL). A config that `Config::from_toml` accepts must be runnable:
/// every duration fits a deadline (now + twice the duration), and every
/// seeded table passes the same rules as one created over HTTP.
pub fn config_toml(data: &[u8]) {
    let (text, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // `Config::load` reads the file as UTF-8 and refuses anything else.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    match Config::from_toml(Path::new("fuzz.toml"), text, env) {
        Ok(config) => check_config(&config),
        Err(e) => assert!(!e.to_string().is_empty(), "an empty error message"),
    }
}

fn check_config(config: &Config) {
    let now = Instant::now();
    let wall = SystemTime::now();
    for (key, d) in [
        ("http.heartbeat", config.http.heartbeat),
        ("http.retry", config.http.retry),
        ("http.ws_ping", config.http.ws_ping),
        ("storage.retention", config.storage.retention),
        ("occupancy.occupy_after", config.occupancy.occupy_after),
        ("occupancy.release_after", config.occupancy.release_after),
    ] {
        let twice = d.checked_mul(2);
        assert!(
            twice.and_then(|t| now.checked_add(t)).is_some()
                && twice.and_then(|t| wall.checked_add(t)).is_some()
                && wall.checked_sub(d).is_some(),
            "{key} = {d:?} is accepted but overflows a deadline"
        );
    }
    let mut ids = std::collections::HashSet::new();
    for table in &config.tables {
        assert!(table.id > 0, "seeded table id {}", table.id);
        assert!(ids.insert(table.id), "table {} seeded twice", table.id);
        let rules = crate::tables::check_number(&table.number)
            .and(crate::tables::check_seats(table.seats))
            .and(crate::tables::check_layout(&table.layout).map_err(|(f, m)| format!("{f}: {m}")));
        assert!(
            rules.is_ok(),
            "seeded table {} breaks the rules: {rules:?}",
            table.id
        );
    }
}

/// Bytes per AMG8833 read: the thermistor (2) and the 64 pixels (128).
const AMG8833_READ: usize = 2 + 2 * PIXELS;

/// Most reads one `amg8833` input makes.
const AMG8833_MAX_READS: usize = 64;

/// An AMG8833 on a bus that returns the fuzzer's bytes (a broken or noisy
/// sensor). The first 8 bytes are a pixel mask (one table's part of the
/// array, bit i = pixel i); then each 130 bytes are one read: thermistor
/// registers 0x0E-0x0F, then pixel registers 0x80-0xFF. The driver is
/// initialised, then reads each frame and counts people; a masked counter
/// counts the same frames. Counts must be possible for 64 pixels, and a
/// frame the driver accepts is within the chip's range.
pub fn amg8833(data: &[u8]) {
    let (mask_bytes, frames) = data.split_at(data.len().min(8));
    let mut mask = [false; PIXELS];
    for (i, pixel) in mask.iter_mut().enumerate() {
        *pixel = mask_bytes
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0);
    }
    let cfg = Amg8833Config::default();
    let most = u32::try_from(PIXELS / cfg.counting.min_blob.max(1)).unwrap_or(u32::MAX);
    let mut masked = PeopleCounter::masked(cfg.counting.clone(), mask);
    let bus = RegisterBus::default();
    let mut driver = Amg8833::new(bus.clone(), NoDelay, cfg.clone());
    if driver.init().is_err() {
        return;
    }
    for read in frames.chunks(AMG8833_READ).take(AMG8833_MAX_READS) {
        bus.load(0x0E, read.get(..2).unwrap_or(read));
        bus.load(0x80, read.get(2..).unwrap_or(&[]));
        match driver.read() {
            Ok(reading) => {
                let people = reading.people.unwrap_or(0);
                assert!(people <= most, "{people} people on 64 pixels");
                assert_eq!(
                    reading.present,
                    people > 0,
                    "present disagrees with {people}"
                );
            }
            Err(e) => assert!(!e.to_string().is_empty(), "an empty error message"),
        }
        if let Ok(frame) = driver.frame() {
            assert!(
                frame
                    .iter()
                    .all(|t| t.is_finite() && (-30.0..=130.0).contains(t)),
                "an accepted frame out of range: {frame:?}"
            );
            let people = masked.update(&frame);
            assert!(people <= most, "{people} people on the masked pixels");
        }
        if let Some(background) = driver.counter().background() {
            assert!(
                background.iter().all(|t| t.is_finite()),
                "the background diverged: {background:?}"
            );
        }
    }
}

/// An I2C device with 256 registers and an auto-incrementing pointer, as
/// the AMG8833 has: a write sets the pointer (and stores any data bytes),
/// a read returns registers from it. Clones share the registers.
#[derive(Clone, Default)]
struct RegisterBus {
    regs: Arc<std::sync::Mutex<RegisterFile>>,
}

struct RegisterFile {
    regs: [u8; 256],
    pointer: u8,
}

impl Default for RegisterFile {
    fn default() -> Self {
        RegisterFile {
            regs: [0; 256],
            pointer: 0,
        }
    }
}

impl RegisterBus {
    fn load(&self, start: u8, bytes: &[u8]) {
        let mut file = self.regs.lock().unwrap_or_else(|p| p.into_inner());
        for (i, b) in bytes.iter().enumerate() {
            file.regs[usize::from(start).wrapping_add(i) % 256] = *b;
        }
    }
}

#[derive(Debug)]
struct BusError;

impl embedded_hal::i2c::Error for BusError {
    fn kind(&self) -> embedded_hal::i2c::ErrorKind {
        embedded_hal::i2c::ErrorKind::Other
    }
}

impl embedded_hal::i2c::ErrorType for RegisterBus {
    type Error = BusError;
}

impl embedded_hal::i2c::I2c for RegisterBus {
    fn transaction(
        &mut self,
        _address: u8,
        operations: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), BusError> {
        use embedded_hal::i2c::Operation;
        let mut file = self.regs.lock().unwrap_or_else(|p| p.into_inner());
        for op in operations.iter_mut() {
            match op {
                Operation::Write(bytes) => {
                    let Some((&reg, data)) = bytes.split_first() else {
                        return Err(BusError);
                    };
                    file.pointer = reg;
                    for b in data {
                        let at = usize::from(file.pointer);
                        file.regs[at] = *b;
                        file.pointer = file.pointer.wrapping_add(1);
                    }
                }
                Operation::Read(buffer) => {
                    for b in buffer.iter_mut() {
                        *b = file.regs[usize::from(file.pointer)];
                        file.pointer = file.pointer.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Delays cost nothing here: the chip's timing is not under test.
struct NoDelay;

impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}
