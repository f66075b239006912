//! `mesero watch`: a terminal client that prints live events.
//!
//! It reads the SSE stream, remembers the last seq, and on any drop
//! reconnects with `Last-Event-ID`, so nothing is missed or shown twice
//! across daemon restarts and network blips.

use futures_util::StreamExt as _;
use std::time::Duration;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One parsed SSE message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE parser: feed bytes, take complete messages.
#[derive(Default)]
pub struct SseParser {
    buffer: String,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut msg = SseMessage::default();
            let mut has_data = false;
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => msg.id = Some(value.to_string()),
                    "event" => msg.event = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            msg.data.push('\n');
                        }
                        msg.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data {
                out.push(msg);
            }
        }
        out
    }
}

/// One line for a human: `#seq time type table actor detail`.
pub fn describe(msg: &SseMessage) -> String {
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
    let detail = match kind {
        "table.state" => format!(
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
    let mut backoff = Duration::from_millis(500);
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
                eprintln!("connected to {stream_url}");
                backoff = Duration::from_millis(500);
                let mut parser = SseParser::default();
                let mut body = response.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    for msg in parser.push(&chunk) {
                        if msg.id.is_some() {
                            last_id.clone_from(&msg.id);
                        }
                        crate::cli::say!("{}", describe(&msg));
                    }
                }
                eprintln!("stream closed; reconnecting");
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_client_error() {
                    anyhow::bail!("{stream_url}: {status}: {text}");
                }
                eprintln!("{stream_url}: {status}; retrying in {backoff:?}");
            }
            Err(e) => eprintln!("{stream_url}: {e}; retrying in {backoff:?}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"retry: 2000\n\nid: 7\nevent: table.st").is_empty());
        let msgs = p.push(b"ate\ndata: {\"a\":1}\n\n: heartbeat\n\n");
        assert_eq!(
            msgs,
            vec![SseMessage {
                id: Some("7".into()),
                event: Some("table.state".into()),
                data: "{\"a\":1}".into()
            }]
        );
    }

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
}
