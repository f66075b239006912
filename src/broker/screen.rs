//! The screen every peer-supplied name passes before rumqttd's router sees
//! it: topic names (PUBLISH, last wills), topic filters (SUBSCRIBE,
//! UNSUBSCRIBE) and client ids.
//!
//! Pure functions, no I/O, shared by the sessions and by
//! [`fuzz_session_bytes`], so what the fuzzer checks is what the sessions
//! run. docs/MQTT.md lists the rumqttd 0.20 code each rule guards; the
//! reason that matters most is that `rumqttd::protocol::matches` slices
//! `topic[..1]`, which panics for a topic whose first character is more
//! than one byte (and the release build aborts on a panic).
//!
//! Two outcomes for a refused name, following MQTT 3.1.1:
//! - [`Refusal::Malformed`]: the packet breaks the protocol (§1.5.3,
//!   §4.7.3: not UTF-8, a NUL, empty, a wildcard in a topic name). The
//!   connection is closed.
//! - [`Refusal::Unsupported`]: valid MQTT this broker does not route
//!   (reserved `$` topics, a first character that is not ASCII, control
//!   characters, more than [`MAX_TOPIC_BYTES`]). A PUBLISH is acknowledged
//!   and dropped, a will is dropped, a filter gets SUBACK 0x80.

use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Packet, Protocol as _};

/// Longest topic name or filter routed, in bytes. MQTT allows 65,535; the
/// router keeps every topic it routed to a subscriber in a cache, so long
/// names cost memory forever. mesero's own topics are under 100 bytes.
pub const MAX_TOPIC_BYTES: usize = 1024;

/// Longest client id accepted (MQTT requires 23; the router keeps each
/// persistent session's id).
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A protocol violation: the connection is closed.
    Malformed(&'static str),
    /// Valid MQTT that is not routed here.
    Unsupported(&'static str),
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed(why) | Refusal::Unsupported(why) => why,
        }
    }
}

/// Checks a topic name (PUBLISH or will) and returns it as text.
pub fn topic_name(raw: &[u8]) -> Result<&str, Refusal> {
    let topic =
        std::str::from_utf8(raw).map_err(|_| Refusal::Malformed("topic name is not UTF-8"))?;
    if topic.is_empty() {
        return Err(Refusal::Malformed("empty topic name"));
    }
    if topic.contains('\0') {
        return Err(Refusal::Malformed("NUL in topic name"));
    }
    if topic.contains(['+', '#']) {
        return Err(Refusal::Malformed("wildcard in a topic name"));
    }
    common(topic)?;
    Ok(topic)
}

/// Checks a topic filter (SUBSCRIBE, UNSUBSCRIBE); the codec already
/// checked it is UTF-8. Every refusal is answered with SUBACK 0x80 (or the
/// filter is left out of an UNSUBSCRIBE), which MQTT allows for any filter.
pub fn filter(filter: &str) -> Result<(), Refusal> {
    if filter.is_empty() {
        return Err(Refusal::Unsupported("empty topic filter"));
    }
    if filter.contains('\0') {
        return Err(Refusal::Unsupported("NUL in topic filter"));
    }
    // MQTT §4.7.1: `#` only as the whole last level, `+` only as a whole
    // level.
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return Err(Refusal::Unsupported("misplaced # in topic filter"));
        }
        if level.contains('+') && level != "+" {
            return Err(Refusal::Unsupported("+ must be a whole level"));
        }
    }
    common(filter)
}

/// Rules for names and filters alike.
fn common(name: &str) -> Result<(), Refusal> {
    if name.len() > MAX_TOPIC_BYTES {
        return Err(Refusal::Unsupported("topic longer than MAX_TOPIC_BYTES"));
    }
    // `$SYS`-style topics are the server's (§4.7.2); the router turns a
    // `$` filter other than `$share` into a disconnect, and its shared
    // subscriptions (`$share/...`) can reach an `expect` at disconnect.
    if name.starts_with('$') {
        return Err(Refusal::Unsupported("topics starting with $ are reserved"));
    }
    // rumqttd's `matches` slices the first byte.
    if !name.as_bytes().first().is_some_and(u8::is_ascii) {
        return Err(Refusal::Unsupported(
            "the first character must be ASCII (a limit of the router)",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Refusal::Unsupported("control character in topic"));
    }
    Ok(())
}

/// Checks a client id the client chose (empty ids are assigned one).
/// Refused: what the router drops without an answer (`+ $ # /`), control
/// characters, and more than [`MAX_CLIENT_ID_BYTES`].
pub fn client_id(id: &str) -> Result<(), &'static str> {
    if id.len() > MAX_CLIENT_ID_BYTES {
        return Err("client id longer than MAX_CLIENT_ID_BYTES");
    }
    if id.contains(['+', '$', '#', '/']) {
        return Err("client id with + $ # or /");
    }
    if id.chars().any(char::is_control) {
        return Err("control character in client id");
    }
    Ok(())
}

/// For the fuzzer (`fuzz/`): splits `data` into MQTT 3.1.1 packets with
/// the sessions' decoder and limit, screens each as a session would, and
/// runs what passes through the public rumqttd functions the router
/// applies to it, so an input that passes the screen but would panic the
/// router panics here. Never panics otherwise.
#[doc(hidden)]
pub fn fuzz_session_bytes(data: &[u8]) {
    /// The default `mqtt.max_payload`.
    const MAX_PAYLOAD: usize = 64 * 1024;
    let mut buf = BytesMut::from(data);
    while let Ok(packet) = V4.read_mut(&mut buf, MAX_PAYLOAD) {
        match packet {
            Packet::Connect(connect, _, will, _, _) => {
                let _ = client_id(&connect.client_id);
                if let Some(will) = will {
                    if let Ok(topic) = topic_name(&will.topic) {
                        route_topic(topic);
                    }
                }
            }
            Packet::Publish(publish, _) => {
                if let Ok(topic) = topic_name(&publish.topic) {
                    route_topic(topic);
                }
            }
            Packet::Subscribe(subscribe, _) => {
                for f in &subscribe.filters {
                    if filter(&f.path).is_ok() {
                        route_filter(&f.path);
                    }
                }
            }
            Packet::Unsubscribe(unsubscribe, _) => {
                for f in &unsubscribe.filters {
                    if filter(f).is_ok() {
                        route_filter(f);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What the router does with a topic name: match it against filters (and
/// filters against it, for retained messages and new subscriptions).
fn route_topic(topic: &str) {
    let _ = rumqttd::protocol::valid_topic(topic);
    for f in ["#", "+", "a/#", "+/+", topic] {
        let _ = rumqttd::protocol::matches(topic, f);
    }
}

/// What the router does with a filter it takes.
fn route_filter(filter: &str) {
    let _ = rumqttd::protocol::valid_filter(filter);
    let _ = rumqttd::protocol::has_wildcards(filter);
    for topic in ["a", "a/b", filter] {
        let _ = rumqttd::protocol::matches(topic, filter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_mesero_and_nodes_use_pass() {
        for t in [
            "mesero/test/sensors/pir-1",
            "homeassistant/status",
            "nodes/esp-3/status",
            "a/ñ/é",
            "a//b",
            "/",
        ] {
            assert_eq!(topic_name(t.as_bytes()), Ok(t), "{t}");
        }
    }

    #[test]
    fn hostile_topic_names_are_refused() {
        let long = vec![b'a'; MAX_TOPIC_BYTES + 1];
        let malformed: [&[u8]; 8] = [
            &[0xff, b'/', b'x'],
            &[b'a', 0xc3],
            b"",
            b"a\0b",
            b"a/+/b",
            b"a/#",
            b"+",
            b"#",
        ];
        for t in malformed {
            assert!(matches!(topic_name(t), Err(Refusal::Malformed(_))), "{t:?}");
        }
        let unsupported: [&[u8]; 6] = [
            "é/x".as_bytes(),
            "ñ".as_bytes(),
            b"$SYS/x",
            b"a\nb",
            b"\x7f",
            &long,
        ];
        for t in unsupported {
            assert!(
                matches!(topic_name(t), Err(Refusal::Unsupported(_))),
                "{t:?}"
            );
        }
    }

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for f in [
            "#",
            "+",
            "a/#",
            "+/+/x",
            "a/+/b/#",
            "mesero/test/tables/+/state",
            "a/ñ",
        ] {
            assert_eq!(filter(f), Ok(()), "{f}");
        }
        for f in [
            "",
            "a#",
            "a/#/b",
            "a/b#",
            "a+",
            "a/+b",
            "##",
            "$SYS/#",
            "$share/g/a",
            "é/x",
            "ñ",
            "a\0b",
            "a\nb",
        ] {
            assert!(filter(f).is_err(), "{f:?}");
        }
        assert!(filter(&"a".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }

    #[test]
    fn client_ids_the_router_or_a_log_cannot_take_are_refused() {
        assert_eq!(client_id("esp-3"), Ok(()));
        assert_eq!(client_id("ñandú"), Ok(()));
        for id in ["a/b", "a+", "$x", "#", "evil\nINFO forged", "\u{1b}[31m"] {
            assert!(client_id(id).is_err(), "{id:?}");
        }
        assert!(client_id(&"a".repeat(MAX_CLIENT_ID_BYTES + 1)).is_err());
    }

    /// A packet with `topic` as its only string: PUBLISH, will, SUBSCRIBE,
    /// UNSUBSCRIBE.
    fn packets(topic: &[u8]) -> Vec<Vec<u8>> {
        let s = |b: &[u8]| [&(b.len() as u16).to_be_bytes()[..], b].concat();
        let frame = |byte1: u8, body: Vec<u8>| {
            let mut out = vec![byte1];
            let mut len = body.len();
            loop {
                let mut b = (len % 128) as u8;
                len /= 128;
                if len > 0 {
                    b |= 0x80;
                }
                out.push(b);
                if len == 0 {
                    break;
                }
            }
            out.extend(body);
            out
        };
        let connect = [
            s(b"MQTT"),
            vec![4, 0b0000_0110, 0, 30],
            s(b"c"),
            s(topic),
            s(b"gone"),
        ]
        .concat();
        vec![
            frame(0x10, connect),
            frame(0x30, [s(topic), b"x".to_vec()].concat()),
            frame(0x82, [vec![0, 1], s(topic), vec![1]].concat()),
            frame(0xa2, [vec![0, 2], s(topic)].concat()),
        ]
    }

    #[test]
    fn the_fuzz_entry_point_survives_the_hostile_packets() {
        let long = vec![b'a'; 65_535 - 8];
        let hostile: Vec<&[u8]> = vec![
            "é/x".as_bytes(),
            "ñ".as_bytes(),
            "€".as_bytes(),
            &[0xff, b'/', b'x'],
            &[0xc3],
            b"$SYS/x",
            b"$share/g/a",
            b"a/+/b",
            b"#",
            b"",
            b"a\0b",
            b"a\nb",
            &long,
        ];
        for topic in hostile {
            for packet in packets(topic) {
                fuzz_session_bytes(&packet);
                // Truncated and doubled forms too.
                fuzz_session_bytes(&packet[..packet.len() / 2]);
                fuzz_session_bytes(&[packet.clone(), packet].concat());
            }
        }
        // QoS 3, pkid 0, an empty SUBSCRIBE, an empty UNSUBSCRIBE.
        for bytes in [
            &[0x36, 5, 0, 1, b't', 0, 1][..],
            &[0x32, 5, 0, 1, b't', 0, 0],
            &[0x82, 2, 0, 1],
            &[0xa2, 2, 0, 1],
            &[0xf0, 0],
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            fuzz_session_bytes(bytes);
        }
    }

    /// The reason for the screen: the router's matcher panics on a topic
    /// that starts with a multi-byte character.
    #[test]
    fn rumqttd_matches_still_panics_on_a_multibyte_first_character() {
        let panicked = std::panic::catch_unwind(|| rumqttd::protocol::matches("é/x", "#"));
        assert!(
            panicked.is_err(),
            "rumqttd no longer slices topic[..1]: revisit the screen"
        );
    }
}
