//! The config's tests: whole files in, [`Config`] or an error naming the
//! key out.

use super::*;
use crate::sensors::spec::SensorKind;
use sha2::{Digest, Sha256};
use std::time::Duration;

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(
        Path::new("test.toml"),
        text,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn the_example_config_is_valid() {
    let cfg = parse(EXAMPLE, &[]).expect("example config");
    assert_eq!(cfg.tables.len(), 12);
    assert_eq!(cfg.auth.tokens.len(), 3);
    assert_eq!(cfg.sensors.len(), 12, "a sim sensor on every demo table");
    assert!(
        cfg.sensors
            .iter()
            .all(|s| matches!(s.kind, SensorKind::Sim(_)) && s.table.is_some())
    );
    assert!(
        cfg.mqtt.allow_anonymous,
        "the dev config allows anonymous MQTT"
    );
    assert_eq!(cfg.mqtt.users.len(), 1);
}

#[test]
fn the_pi_example_config_is_valid_and_locked_down() {
    let text = include_str!("../../config/pi.example.toml");
    let cfg = parse(text, &[]).expect("pi example config");
    assert_eq!(cfg.auth.anonymous, None, "no anonymous access");
    assert!(!text.contains("token ="), "tokens only as token_sha256");
    let kinds: Vec<&str> = cfg.sensors.iter().map(|s| s.kind.name()).collect();
    for kind in ["gpio", "amg8833", "vl53l1x", "button"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(cfg.sensors.iter().all(|s| s.kind.is_hardware()));
    assert!(!cfg.mqtt.allow_anonymous, "no anonymous MQTT");
    assert!(!cfg.mqtt.users.is_empty(), "MQTT users are configured");
    assert!(
        !text.contains("password ="),
        "MQTT passwords only as password_sha256"
    );
}

#[test]
fn mqtt_defaults_follow_the_spec() {
    let m = parse("", &[]).expect("defaults").mqtt;
    assert_eq!(m.connect_timeout, Duration::from_secs(5));
    assert_eq!((m.max_pending, m.max_pending_per_ip), (64, 8));
    assert_eq!((m.max_subscriptions, m.max_filters), (100, 256));
    assert_eq!((m.max_retained, m.max_retained_bytes), (1000, 8 << 20));
    assert_eq!(
        (m.max_retained_per_user, m.max_retained_bytes_per_user),
        (100, 1 << 20)
    );
    assert!(m.enabled);
    assert_eq!(m.listen, "0.0.0.0:1883".parse().expect("addr"));
    assert_eq!(m.ws_listen, None);
    assert!(
        !m.allow_anonymous,
        "anonymous MQTT is off outside the dev config"
    );
    assert!(!m.homeassistant);
    assert!(m.users.is_empty());
}

#[test]
fn mqtt_users_and_overrides() {
    let digest = hex::encode(Sha256::digest(b"pw"));
    let cfg = parse(
        &format!(
            "[mqtt]\nws_listen = \"127.0.0.1:9001\"\n[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"pw\"\n[[mqtt.users]]\nname = \"b\"\nrole = \"viewer\"\npassword_sha256 = \"{digest}\""
        ),
        &[
            ("MESERO_MQTT_LISTEN", "127.0.0.1:0"),
            ("MESERO_MQTT_ALLOW_ANONYMOUS", "true"),
            ("MESERO_MQTT_HOMEASSISTANT", "1"),
            ("MESERO_MQTT_MAX_CONNECTIONS", "8"),
        ],
    )
    .expect("mqtt config");
    let m = cfg.mqtt;
    assert_eq!(m.listen, "127.0.0.1:0".parse().expect("addr"));
    assert_eq!(m.ws_listen, Some("127.0.0.1:9001".parse().expect("addr")));
    assert!(m.allow_anonymous && m.homeassistant);
    assert_eq!(m.max_connections, 8);
    assert_eq!(m.users[0].role, Role::Staff);
    assert_eq!(m.users[0].sha256, m.users[1].sha256);
    let off = parse(
        "[mqtt]\nws_listen = \"127.0.0.1:9001\"",
        &[("MESERO_MQTT_WS_LISTEN", "")],
    )
    .expect("ws off");
    assert_eq!(off.mqtt.ws_listen, None);
}

#[test]
fn empty_file_gives_the_spec_defaults() {
    let cfg = parse("", &[]).expect("defaults");
    assert_eq!(cfg.http.listen, "0.0.0.0:8080".parse().expect("addr"));
    assert_eq!(cfg.occupancy.occupy_after, Duration::from_secs(10));
    assert_eq!(cfg.occupancy.release_after, Duration::from_secs(180));
    assert_eq!(cfg.http.heartbeat, Duration::from_secs(15));
    assert_eq!(cfg.http.max_connections, 512);
    assert_eq!(cfg.http.max_connections_per_ip, 32);
    assert_eq!(cfg.http.max_streams, 128);
    assert_eq!(cfg.storage.retention_days, 30);
    assert_eq!(cfg.auth.anonymous, Some(Role::Viewer));
    assert_eq!(cfg.site.id, "local");
}

#[test]
fn unknown_keys_are_named() {
    let err = parse("[http]\nlistn = \"x\"\n", &[]).expect_err("unknown key");
    assert!(err.to_string().contains("listn"), "{err}");
    let err = parse("[htp]\n", &[]).expect_err("unknown section");
    assert!(err.to_string().contains("htp"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    for (text, key) in [
        ("[http]\nlisten = \"nowhere\"", "http.listen"),
        (
            "[occupancy]\noccupy_after = \"10 parsecs\"",
            "occupancy.occupy_after",
        ),
        ("[occupancy]\nbussing = \"yes\"", "occupancy.bussing"),
        ("[storage]\nretention_days = 0", "storage.retention_days"),
        ("[auth]\nanonymous = \"root\"", "auth.anonymous"),
        ("[site]\nlanguage = \"fr\"", "site.language"),
        (
            "[[auth.tokens]]\nname = \"a\"\nrole = \"chef\"\ntoken = \"x\"",
            "auth.tokens[0].role",
        ),
        (
            "[[auth.tokens]]\nname = \"a\"\nrole = \"staff\"\ntoken_sha256 = \"zz\"",
            "auth.tokens[0].token_sha256",
        ),
        ("[[tables]]\nid = 1\nseats = 0", "tables[0].seats"),
        ("[[tables]]\nid = 1\nnumber = \" \"", "tables[0].number"),
        (
            "[[tables]]\nid = 1\nnumber = \"a label far too long\"",
            "tables[0].number",
        ),
        ("[http]\nmax_connections = 0", "http.max_connections"),
        (
            "[http]\nmax_connections_per_ip = 0",
            "http.max_connections_per_ip",
        ),
        ("[http]\nmax_streams = 0", "http.max_streams"),
        ("[mqtt]\nlisten = \"1883\"", "mqtt.listen"),
        ("[mqtt]\nws_listen = \"x\"", "mqtt.ws_listen"),
        ("[mqtt]\nmax_payload = 0", "mqtt.max_payload"),
        ("[mqtt]\nmax_connections = 0", "mqtt.max_connections"),
        ("[mqtt]\nsegments = 0", "mqtt.segments"),
        ("[mqtt]\nconnect_timeout = \"0s\"", "mqtt.connect_timeout"),
        ("[mqtt]\nconnect_timeout = \"2m\"", "mqtt.connect_timeout"),
        ("[mqtt]\nconnect_timeout = \"soon\"", "mqtt.connect_timeout"),
        ("[mqtt]\nmax_pending = 0", "mqtt.max_pending"),
        ("[mqtt]\nmax_pending_per_ip = 0", "mqtt.max_pending_per_ip"),
        ("[mqtt]\nmax_subscriptions = 0", "mqtt.max_subscriptions"),
        ("[mqtt]\nmax_filters = 0", "mqtt.max_filters"),
        ("[mqtt]\nmax_filters = 100000", "mqtt.max_filters"),
        ("[mqtt]\nmax_retained_bytes = -1", "mqtt"),
        (
            "[mqtt]\nmax_retained_bytes_per_user = 2000000000",
            "mqtt.max_retained_bytes_per_user",
        ),
        ("[mqtt]\nallow_anonymous = \"no\"", "mqtt.allow_anonymous"),
        ("[mqtt]\nlisen = \"x\"", "mqtt"),
        (
            "[[mqtt.users]]\nname = \"a\"\nrole = \"cook\"\npassword = \"x\"",
            "mqtt.users[0].role",
        ),
        (
            "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword_sha256 = \"zz\"",
            "mqtt.users[0].password_sha256",
        ),
        (
            "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"x\"\npassword_sha256 = \"00\"",
            "mqtt.users[0]",
        ),
        (
            "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"",
            "mqtt.users[0]",
        ),
        (
            "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"x\"\n[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"y\"",
            "mqtt.users[1].name",
        ),
        ("[[tables]]\nid = 1\n[[tables]]\nid = 1", "tables[1].id"),
        ("[[tables]]\nid = 9007199254740992", "tables[0].id"),
        ("[[tables]]\nid = 1\njoins = [1]", "tables[0].joins"),
        (
            "[[tables]]\nid = 1\n[[tables]]\nid = 2\njoins = [3]",
            "tables[1].joins",
        ),
        (
            "[[tables]]\nid = 1\ncombined_seats = 0",
            "tables[0].combined_seats",
        ),
    ] {
        let err = parse(text, &[]).expect_err(text);
        assert!(err.to_string().starts_with(key), "{text}: {err}");
    }
}

#[test]
fn a_join_declared_on_one_table_is_seeded_on_both() {
    let cfg = parse(
        "[[tables]]\nid = 9\njoins = [10]\n[[tables]]\nid = 10\ncombined_seats = 3",
        &[],
    )
    .expect("config");
    let joins: Vec<Vec<i64>> = cfg.tables.iter().map(|t| t.joins.clone()).collect();
    assert_eq!(joins, vec![vec![10], vec![9]]);
    assert_eq!(cfg.tables[1].combined_seats, Some(3));
}

#[test]
fn environment_overrides_scalar_keys() {
    let cfg = parse(
        "[http]\nlisten = \"0.0.0.0:8080\"",
        &[
            ("MESERO_HTTP_LISTEN", "127.0.0.1:9000"),
            ("MESERO_STORAGE_RETENTION_DAYS", "7"),
            ("MESERO_OCCUPANCY_BUSSING", "true"),
            ("MESERO_SITE_ID", "12"),
            ("PATH", "/bin"),
        ],
    )
    .expect("overrides");
    assert_eq!(cfg.http.listen, "127.0.0.1:9000".parse().expect("addr"));
    assert_eq!(cfg.storage.retention_days, 7);
    assert!(cfg.occupancy.bussing);
    assert_eq!(cfg.site.id, "12");
}

#[test]
fn bad_environment_overrides_are_named() {
    let err = parse("", &[("MESERO_HTTP_LISTN", "x")]).expect_err("unknown");
    assert!(err.to_string().contains("MESERO_HTTP_LISTN"), "{err}");
    let err = parse("", &[("MESERO_HTTP_MAX_STREAMS", "0")]).expect_err("range");
    assert!(
        err.to_string()
            .starts_with("http.max_streams (from MESERO_HTTP_MAX_STREAMS)"),
        "{err}"
    );
    let err = parse("", &[("MESERO_STORAGE_RETENTION_DAYS", "many")]).expect_err("int");
    assert!(
        err.to_string().starts_with("storage.retention_days"),
        "{err}"
    );
}

/// The overridable keys are read from the raw structs; they are exactly
/// the list that used to be kept by hand (`ENV_KEYS`), types included.
#[test]
fn environment_keys_are_derived_from_the_raw_structs() {
    let mut expected = vec![
        "site id Str",
        "site name Str",
        "site timezone Str",
        "site language Str",
        "http listen Str",
        "http heartbeat Str",
        "http retry Str",
        "http ws_ping Str",
        "http max_body_bytes Int",
        "http client_queue Int",
        "http max_connections Int",
        "http max_connections_per_ip Int",
        "http max_streams Int",
        "http tls_listen Str",
        "http tls_cert Str",
        "http tls_key Str",
        "http tls_ca_cert Str",
        "http tls_ca_key Str",
        "storage path Str",
        "storage retention_days Int",
        "storage batch_max Int",
        "occupancy occupy_after Str",
        "occupancy release_after Str",
        "occupancy bussing Bool",
        "mqtt enabled Bool",
        "mqtt listen Str",
        "mqtt ws_listen Str",
        "mqtt allow_anonymous Bool",
        "mqtt homeassistant Bool",
        "mqtt max_payload Int",
        "mqtt max_connections Int",
        "mqtt segment_bytes Int",
        "mqtt segments Int",
        "mqtt connect_timeout Str",
        "mqtt max_pending Int",
        "mqtt max_pending_per_ip Int",
        "mqtt max_subscriptions Int",
        "mqtt max_filters Int",
        "mqtt max_retained Int",
        "mqtt max_retained_bytes Int",
        "mqtt max_retained_per_user Int",
        "mqtt max_retained_bytes_per_user Int",
        "waitlist turn_time Str",
        "auth anonymous Str",
        "auth pairing_lifetime Str",
        "auth max_paired Int",
        "auth pairing_attempts_per_minute Int",
        "log level Str",
        "alerts escalate_after Str",
        "alerts cooldown Str",
        "alerts max_escalations Int",
        "reservations hold_before Str",
        "reservations grace Str",
        "reservations early_checkin Str",
        "reservations duration Str",
        "bridge url Str",
        "bridge client_id Str",
        "bridge username Str",
        "bridge password Str",
        "bridge password_file Str",
        "bridge password_sha256 Str",
        "bridge ca_file Str",
        "bridge client_cert Str",
        "bridge client_key Str",
        "bridge topic_prefix Str",
        "bridge events Bool",
        "bridge state Bool",
        "bridge analytics Bool",
        "bridge max_backlog_days Int",
        "bridge backlog_rate Int",
        "bridge max_inflight Int",
        "bridge keep_alive Str",
        "bridge reconnect_min Str",
        "bridge reconnect_max Str",
        "analytics keep_days Int",
    ];
    let mut derived: Vec<String> = env_keys()
        .expect("the defaults serialise")
        .iter()
        .map(|k| format!("{} {} {:?}", k.section, k.key, k.kind))
        .collect();
    expected.sort_unstable();
    derived.sort_unstable();
    assert_eq!(derived, expected);
}

/// Every duration key of the documented config, as (section, key).
fn duration_keys() -> Vec<(String, String)> {
    let doc: toml::Table = EXAMPLE.parse().expect("example");
    let mut keys = Vec::new();
    for (section, value) in &doc {
        for (key, value) in value.as_table().into_iter().flatten() {
            if value
                .as_str()
                .is_some_and(|v| humantime::parse_duration(v).is_ok())
            {
                keys.push((section.clone(), key.clone()));
            }
        }
    }
    keys
}

#[test]
fn every_duration_key_is_bounded_in_the_file_and_the_environment() {
    let keys = duration_keys();
    assert!(keys.len() >= 5, "{keys:?}");
    for (section, key) in keys {
        let dotted = format!("{section}.{key}");
        let var = format!("MESERO_{section}_{key}").to_uppercase();
        for huge in ["500000000000y", "8days", "600000000000y"] {
            let err = parse(&format!("[{section}]\n{key} = \"{huge}\""), &[])
                .expect_err(&dotted)
                .to_string();
            assert!(err.starts_with(&format!("{dotted}: ")), "{err}");
            let err = parse("", &[(&var, huge)]).expect_err(&var).to_string();
            assert!(
                err.starts_with(&format!("{dotted} (from {var}): ")),
                "{err}"
            );
        }
    }
    let err = parse("[occupancy]\noccupy_after = \"2d\"", &[]).expect_err("2d");
    assert_eq!(
        err.to_string(),
        "occupancy.occupy_after: \"2d\" is too long: must be at most 1day"
    );
    for (text, key) in [
        (
            "[http]\nws_ping = \"0s\"",
            "http.ws_ping: must be greater than zero",
        ),
        (
            "[http]\nheartbeat = \"1ms\"",
            "http.heartbeat: \"1ms\" is too short",
        ),
        ("[http]\nretry = \"2h\"", "http.retry: \"2h\" is too long"),
    ] {
        let err = parse(text, &[]).expect_err(text).to_string();
        assert!(err.starts_with(key), "{err}");
    }
    let bounds = parse(
        "[http]\nheartbeat = \"1h\"\nws_ping = \"10ms\"\n[occupancy]\noccupy_after = \"0s\"\nrelease_after = \"1day\"",
        &[],
    )
    .expect("the bounds themselves are accepted");
    assert_eq!(bounds.occupancy.release_after, Duration::from_secs(86_400));
}

#[test]
fn sensor_durations_are_bounded_too() {
    let sim = "[[tables]]\nid = 1\n[[sensors]]\nid = \"s\"\nkind = \"sim\"\ntable = 1\n";
    for (extra, key) in [
        (
            "script = [[\"500000000000y\", true]]",
            "sensors[0].script[0]",
        ),
        (
            "seed = 1\ngap = [\"1m\", \"500000000000y\"]",
            "sensors[0].gap",
        ),
        (
            "seed = 1\nstay = [\"500000000000y\", \"1m\"]",
            "sensors[0].stay",
        ),
    ] {
        let err = parse(&format!("{sim}{extra}"), &[])
            .expect_err(extra)
            .to_string();
        assert!(err.starts_with(&format!("{key}: ")), "{extra}: {err}");
        assert!(err.contains("at most"), "{extra}: {err}");
    }
    for (text, key) in [
        (
            "[[sensors]]\nid = \"b\"\nkind = \"button\"\npin = 4\nlong_press = \"500000000000y\"",
            "sensors[0].long_press",
        ),
        (
            "[[tables]]\nid = 1\n[[sensors]]\nid = \"m\"\nkind = \"mqtt\"\ntable = 1\nstale_after = \"500000000000y\"",
            "sensors[0].stale_after",
        ),
    ] {
        let err = parse(text, &[]).expect_err(key).to_string();
        assert!(err.starts_with(&format!("{key}: ")), "{err}");
    }
}

#[test]
fn token_sha256_matches_plain_token() {
    let digest = hex::encode(Sha256::digest(b"s3cret"));
    let cfg = parse(
        &format!(
            "[[auth.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{digest}\"\n[[auth.tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken = \"s3cret\""
        ),
        &[],
    )
    .expect("tokens");
    assert_eq!(cfg.auth.tokens[0].sha256, cfg.auth.tokens[1].sha256);
}

/// `[[sensors]]` entries of every kind, and their mistakes.
mod sensors {
    use crate::config::{Config, ConfigError};
    use crate::sensors::TofKind;
    use crate::sensors::amg8833::FrameRate;
    use crate::sensors::spec::{Pull, SensorKind, SimSpec};
    use std::path::Path;
    use std::time::Duration;

    const TABLES: &str = "[[tables]]\nid = 1\nseats = 2\n[[tables]]\nid = 2\n";

    fn parse(sensors: &str) -> Result<Config, ConfigError> {
        Config::from_toml(
            Path::new("test.toml"),
            &format!("{TABLES}{sensors}"),
            std::iter::empty(),
        )
    }

    #[test]
    fn every_kind_with_its_keys() {
        let cfg = parse(
            r#"
[[sensors]]
id = "pir-1"
kind = "gpio"
table = 1
pin = 17
pull = "down"
debounce_ms = 100

[[sensors]]
id = "call-1"
kind = "button"
pin = 27

[[sensors]]
id = "thermal-a"
kind = "amg8833"
table = 1
address = 0x69
frame_rate = 1
delta_c = 2.0
min_blob = 4
window = [0, 0, 4, 8]

[[sensors]]
id = "thermal-b"
kind = "amg8833"
table = 2
address = 0x69
frame_rate = 1
window = [4, 0, 4, 8]

[[sensors]]
id = "tof-1"
kind = "vl53l0x"
table = 1
address = 0x30
xshut_pin = 5
max_mm = 600

[[sensors]]
id = "tof-2"
kind = "vl53l1x"
table = 2
xshut_pin = 6
stale_after = "1m"

[[sensors]]
id = "node-1"
kind = "mqtt"
table = 2

[[sensors]]
id = "sim-1"
kind = "sim"
table = 1
script = [["0s", false], ["30s", true, 2]]

[[sensors]]
id = "sim-2"
kind = "sim"
table = 2
seed = 7
gap = ["1m", "5m"]
"#,
        )
        .expect("valid sensors");
        let s = &cfg.sensors;
        assert_eq!(s.len(), 9);
        match &s[0].kind {
            SensorKind::Gpio(g) => {
                assert_eq!((g.pin, g.pull, g.active_low), (17, Pull::Down, false));
                assert_eq!(g.debounce, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[0].health.stale_after, None, "edge-driven");
        match &s[1].kind {
            SensorKind::Button(b) => {
                assert_eq!((b.input.pull, b.input.active_low), (Pull::Up, true));
                assert_eq!(b.long_press, Duration::from_millis(1500));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[1].table, None);
        match &s[2].kind {
            SensorKind::Amg8833(a) => {
                assert_eq!((a.bus, a.address, a.frame_rate), (1, 0x69, FrameRate::Fps1));
                assert_eq!(a.interval, Duration::from_secs(1));
                assert_eq!(a.counting.min_blob, 4);
                assert!(a.window.contains(7) && !a.window.contains(32));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[2].health.stale_after, Some(Duration::from_secs(30)));
        match &s[5].kind {
            SensorKind::Tof(t) => {
                assert_eq!((t.chip, t.address, t.max_mm), (TofKind::Vl53l1x, 0x29, 800))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[5].health.stale_after, Some(Duration::from_secs(60)));
        assert!(matches!(s[6].kind, SensorKind::Mqtt));
        match &s[7].kind {
            SensorKind::Sim(SimSpec::Scripted(steps)) => {
                assert_eq!(steps.len(), 2);
                assert_eq!(steps[1].at, Duration::from_secs(30));
                assert_eq!(steps[1].people, Some(2));
            }
            other => panic!("{other:?}"),
        }
        match &s[8].kind {
            SensorKind::Sim(SimSpec::Random { seed, config }) => {
                assert_eq!(*seed, 7);
                assert_eq!(config.gap_min, Duration::from_secs(60));
                assert_eq!(config.max_party, 4, "defaults to the table's seats");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            cfg.summary()
                .contains("sensors: 9 (gpio 1, button 1, amg8833 2")
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\n",
                "sensors[0].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 40\n",
                "sensors[0].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 9\npin = 4\n",
                "sensors[0].table",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\npin = 4\n",
                "sensors[0].table",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"laser\"\ntable = 1\n",
                "sensors[0].kind",
            ),
            (
                "[[sensors]]\nid = \"a b\"\nkind = \"mqtt\"\ntable = 1\n",
                "sensors[0].id",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\ndelta_c = 2.0\n",
                "sensors[0].delta_c",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\npull = \"sideways\"\n",
                "sensors[0].pull",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\nstale_after = \"1m\"\n",
                "sensors[0].stale_after",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\nspeed = 1\n",
                "sensors[0].speed",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\naddress = 0x29\n",
                "sensors[0].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\nwindow = [6, 0, 4, 4]\n",
                "sensors[0].window",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\nframe_rate = 5\n",
                "sensors[0].frame_rate",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\naddress = 0x30\n",
                "sensors[0].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l1x\"\ntable = 1\nmax_mm = 9000\n",
                "sensors[0].max_mm",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\n",
                "sensors[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nscript = [[\"x\", true]]\n",
                "sensors[0].script[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nscript = [[true, \"1s\"]]\n",
                "sensors[0].script[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nseed = 1\ngap = [\"5m\", \"1m\"]\n",
                "sensors[0].gap",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 1\nfault_after = 2\n",
                "sensors[0].fault_after",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 1\n[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 2\n",
                "sensors[1].id",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\n[[sensors]]\nid = \"b\"\nkind = \"button\"\npin = 4\n",
                "sensors[1].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"vl53l1x\"\ntable = 2\n",
                "sensors[1].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"vl53l1x\"\ntable = 2\naddress = 0x30\nxshut_pin = 5\n",
                "sensors[0].xshut_pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"amg8833\"\ntable = 2\n",
                "sensors[1].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"gpio\"\ntable = 2\npin = 3\n",
                "sensors[1].pin",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{key}:")),
                "{text}\n→ {message}\n(expected the key {key})"
            );
        }
    }

    #[test]
    fn a_key_the_kind_does_not_take_is_named_with_what_it_takes() {
        for (extra, key) in [("delta_c = 2.0", "delta_c"), ("speed = 1", "speed")] {
            let text =
                format!("[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\n{extra}\n");
            assert_eq!(
                parse(&text).expect_err(extra).to_string(),
                format!(
                    "sensors[0].{key}: not a key of kind \"gpio\" (it takes: pin, pull, active_low, debounce_ms, fault_after)"
                )
            );
        }
        let err = super::parse("sensors = [1]", &[])
            .expect_err("not a table")
            .to_string();
        assert!(err.starts_with("sensors[0]: "), "{err}");
    }
}

#[test]
fn alert_keys_are_checked_by_name() {
    let cfg = parse("", &[]).expect("defaults");
    assert_eq!(cfg.alerts, crate::alerts::AlertRules::default());
    for (var, value, key) in [
        (
            "MESERO_ALERTS_ESCALATE_AFTER",
            "1s",
            "alerts.escalate_after",
        ),
        (
            "MESERO_ALERTS_ESCALATE_AFTER",
            "soon",
            "alerts.escalate_after",
        ),
        ("MESERO_ALERTS_COOLDOWN", "2days", "alerts.cooldown"),
        (
            "MESERO_ALERTS_MAX_ESCALATIONS",
            "11",
            "alerts.max_escalations",
        ),
        (
            "MESERO_ALERTS_MAX_ESCALATIONS",
            "-1",
            "alerts.max_escalations",
        ),
    ] {
        let err = parse("", &[(var, value)]).expect_err(value).to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}
