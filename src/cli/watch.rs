//! `mesero watch`: a terminal client that prints live events.
//!
//! It reads the SSE stream with [`SseParser`], remembers the last seq, and
//! on any drop reconnects with `Last-Event-ID`, so nothing is missed or
//! shown twice across daemon restarts and network blips.

use crate::domain::{Event, EventData};
use crate::sse::{SseMessage, SseParser};
use futures_util::StreamExt as _;
use serde::Deserialize as _;
use std::time::Duration;

/// Wait before the first reconnect, unless the server's `retry:` says
/// otherwise; doubled after each failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Bounds on the server's `retry:` hint, so a hostile or broken server can
/// neither make `watch` hammer it nor wait for ever.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One line for a human: `#seq time type table actor detail`. Control
/// characters in what the server sent are shown escaped
/// ([`printable`](crate::text::printable)), so a string cannot print a line
/// of its own.
pub fn describe(msg: &SseMessage) -> String {
    crate::text::printable(&line(msg)).into_owned()
}

fn line(msg: &SseMessage) -> String {
    let seq = msg.id.as_deref().unwrap_or("-");
    let kind = msg.event.as_deref().unwrap_or("message");
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&msg.data) else {
        return format!("#{seq} {kind} {}", msg.data);
    };
    if kind == "snapshot" {
        let tables = value["tables"].as_array().map_or(0, Vec::len);
        let reset = if value["reset"] == true {
            " (reset)"
        } else {
            ""
        };
        return format!("#{seq} snapshot{reset}: {tables} tables");
    }
    let table = value["table"]
        .as_i64()
        .map_or(String::new(), |t| format!(" table {t}"));
    let detail = match Event::deserialize(&value).map(|e| e.data) {
        Ok(EventData::TableState { from, to, .. }) => format!(" {from} -> {to}"),
        // What this binary cannot type (a server of another make or
        // version) is described from the raw JSON, as far as it goes.
        Ok(EventData::Other { .. }) | Err(_) if kind == "table.state" => format!(
            " {} -> {}",
            value["data"]["from"].as_str().unwrap_or("?"),
            value["data"]["to"].as_str().unwrap_or("?")
        ),
        _ => String::new(),
    };
    format!(
        "#{seq} {} {kind}{table}{detail} by {}",
        value["ts"].as_str().unwrap_or(""),
        value["actor"].as_str().unwrap_or("?"),
    )
}

/// Runs until Ctrl-C. `url` is the daemon's base URL.
pub async fn run(url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let stream_url = format!("{}/api/v1/stream", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut last_id: Option<String> = None;
    let mut backoff = FIRST_BACKOFF;
    let note = |args: std::fmt::Arguments<'_>| crate::cli::note(args);
    loop {
        let mut request = client.get(&stream_url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                note(format_args!("connected to {stream_url}"));
                let mut parser = SseParser::resuming(last_id.take());
                let mut body = response.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    for msg in parser.push(&chunk) {
                        crate::cli::say!("{}", describe(&msg))?;
                    }
                }
                last_id = parser.last_event_id().map(str::to_owned);
                // The server's `retry:` hint, within our own bounds.
                backoff = parser
                    .retry()
                    .unwrap_or(FIRST_BACKOFF)
                    .clamp(MIN_BACKOFF, MAX_BACKOFF);
                note(format_args!("stream closed; reconnecting"));
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_client_error() {
                    anyhow::bail!("{stream_url}: {status}: {}", crate::text::printable(&text));
                }
                note(format_args!(
                    "{stream_url}: {status}; retrying in {backoff:?}"
                ));
            }
            Err(e) => note(format_args!("{stream_url}: {e}; retrying in {backoff:?}")),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_state_change() {
        let msg = SseMessage {
            id: Some("3".into()),
            event: Some("table.state".into()),
            data: r#"{"seq":3,"ts":"T","type":"table.state","table":4,"actor":"staff:x","data":{"from":"free","to":"occupied"}}"#.into(),
        };
        assert_eq!(
            describe(&msg),
            "#3 T table.state table 4 free -> occupied by staff:x"
        );
    }

    #[test]
    fn describes_a_typed_state_change_from_its_variant() {
        let msg = SseMessage {
            id: Some("7".into()),
            event: Some("table.state".into()),
            data: r#"{"seq":7,"ts":"T","type":"table.state","table":7,"actor":"mqtt:host-tablet","data":{"from":"free","table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":3,"reservation":null,"seats":6,"shape":"round","since":"T","state":"occupied","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"occupied"}}"#.into(),
        };
        let event: Event = serde_json::from_str(&msg.data).expect("event");
        assert!(matches!(event.data, EventData::TableState { .. }));
        assert_eq!(
            describe(&msg),
            "#7 T table.state table 7 free -> occupied by mqtt:host-tablet"
        );
    }
}
