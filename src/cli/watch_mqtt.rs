//! `mesero watch --mqtt URL --site S`: follows one site's events from the
//! group's upstream broker (what the site's `[bridge]` forwards, SPEC §7),
//! printed as `mesero watch` prints the SSE stream, each line led by the
//! site. `status` and `gap` messages are printed too.
//!
//! Delivery upstream is at least once and in seq order, so a repeat is a
//! seq not above the last one printed: it is skipped. The subscription is
//! a clean session: what is published while `watch` is disconnected is
//! not replayed (the site's `/api/v1/events` has it).

use crate::sse::SseMessage;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use std::time::Duration;

/// Reconnect waits: from the first, doubled up to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What `watch --mqtt` needs.
pub struct Options<'a> {
    pub url: &'a str,
    pub site: &'a str,
    /// Empty: `mesero/<site>`.
    pub prefix: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Empty: the system's CA store (for `mqtts://`).
    pub ca_file: &'a str,
}

/// One line for a message on `topic` under `prefix`, `None` for a repeat
/// (seq not above `last`, which it updates) or a topic it does not know.
pub fn describe(
    prefix: &str,
    site: &str,
    topic: &str,
    payload: &[u8],
    last: &mut u64,
) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let text = String::from_utf8_lossy(payload);
    let line = match rest {
        "status" => format!("{site} status {text}"),
        "gap" => format!("{site} gap (events deleted before they were forwarded): {text}"),
        _ => {
            let kind = rest.strip_prefix("events/")?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            let seq = value["seq"].as_u64()?;
            if seq <= *last {
                return None;
            }
            *last = seq;
            let msg = SseMessage {
                id: Some(seq.to_string()),
                event: Some(kind.to_string()),
                data: text.into_owned(),
            };
            format!("{site} {}", super::watch::describe(&msg))
        }
    };
    Some(crate::text::printable(&line).into_owned())
}

/// Runs until Ctrl-C.
pub async fn run(options: Options<'_>) -> anyhow::Result<()> {
    let (host, port, tls) = crate::config::mqtt_target(options.url, options.ca_file)?;
    let prefix = if options.prefix.is_empty() {
        format!("mesero/{}", options.site)
    } else {
        options.prefix.trim_end_matches('/').to_string()
    };
    let note = |args: std::fmt::Arguments<'_>| crate::cli::note(args);
    let mut last = 0u64;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let id = format!("mesero-watch-{}", std::process::id());
        let mut mqtt = MqttOptions::new(id, host.clone(), port);
        mqtt.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(1 << 20, 64 * 1024);
        if let Some(user) = options.username {
            mqtt.set_credentials(user, options.password.unwrap_or_default());
        }
        if let Some(tls) = &tls {
            mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                std::sync::Arc::clone(tls),
            )));
        }
        let (client, mut events) = AsyncClient::new(mqtt, 16);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    note(format_args!(
                        "connected to {}; following {prefix}/#",
                        options.url
                    ));
                    backoff = FIRST_BACKOFF;
                    for filter in ["events/#", "status", "gap"] {
                        client.try_subscribe(format!("{prefix}/{filter}"), QoS::AtLeastOnce)?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(line) =
                        describe(&prefix, options.site, &p.topic, &p.payload, &mut last)
                    {
                        crate::cli::say!("{line}")?;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    note(format_args!(
                        "{}: {e}; retrying in {backoff:?}",
                        options.url
                    ));
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_events_once_and_status_and_gaps() {
        let mut last = 0;
        let event = br#"{"site":"s","seq":3,"ts":"T","type":"table.state","table":4,"actor":"staff:x","data":{"from":"free","to":"occupied"}}"#;
        let line = describe(
            "mesero/s",
            "s",
            "mesero/s/events/table.state",
            event,
            &mut last,
        );
        assert_eq!(
            line.as_deref(),
            Some("s #3 T table.state table 4 free -> occupied by staff:x")
        );
        assert_eq!(
            describe(
                "mesero/s",
                "s",
                "mesero/s/events/table.state",
                event,
                &mut last
            ),
            None
        );
        let status = describe("mesero/s", "s", "mesero/s/status", b"offline", &mut last);
        assert_eq!(status.as_deref(), Some("s status offline"));
        assert!(describe("mesero/s", "s", "mesero/other/status", b"x", &mut last).is_none());
    }
}
