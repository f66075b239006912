//! Server-Sent Events, both ends (a leaf module: it knows no other part
//! of mesero).
//!
//! - Server side: [`frame`] is the one place an SSE message is framed (the
//!   hub renders each event with it once; the stream adds the snapshot).
//! - Client side: [`SseParser`] is the crate's one SSE client parser
//!   (`mesero watch` and the integration tests' SSE client use it): it
//!   follows the WHATWG event-stream rules on bytes, so any conforming
//!   server works, not only ours.

/// Frames one message: `id: <id>\nevent: <event>\ndata: <line>\n...\n\n`.
/// Each line of `data` (ended by LF, CR or CRLF, as the parser reads them)
/// gets its own `data:` field, so the client joins them back to `data`; a
/// line break in `event` (which a stored type from elsewhere could carry)
/// is replaced by a space, so it cannot start a field of its own.
pub fn frame(id: impl std::fmt::Display, event: &str, data: &str) -> String {
    let mut out = format!("id: {id}\nevent: {}\n", event.replace(['\r', '\n'], " "));
    for line in data.replace("\r\n", "\n").split(['\r', '\n']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Longest line, and most `data` of one message, the parser holds
/// (16 MiB). Anything longer is dropped rather than buffered: a server (or
/// a fuzzer) that never ends a line cannot make `mesero watch` grow without
/// bound. The daemon's largest message, a snapshot, is far below this.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// One dispatched SSE message (WHATWG HTML §9.2, "dispatch the event").
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The last event ID in effect (the spec's `lastEventId`): set by the
    /// latest `id` field of this stream, also one in an earlier message;
    /// `None` before any, or after an empty `id`.
    pub id: Option<String>,
    /// The `event` field of this message; `None` means `message`.
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE client parser (WHATWG HTML §9.2.6, "Interpreting an
/// event stream"): feed the body's bytes as they arrive with
/// [`push`](SseParser::push), take the complete messages.
///
/// Bytes are buffered until a line is complete and only a complete line is
/// decoded (UTF-8, invalid sequences replaced as the spec says), so a
/// character split across chunks survives. Lines end in LF, CR or CRLF,
/// also when the CR and the LF arrive in different chunks. A UTF-8 BOM at
/// the start of the stream is skipped. One parser reads one stream; a
/// reconnecting client carries the last event ID over with
/// [`resuming`](SseParser::resuming).
#[derive(Debug, Default)]
pub struct SseParser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The stream's first bytes were checked for a BOM.
    started: bool,
    /// The previous chunk ended in CR: an LF starting this one belongs to it.
    after_cr: bool,
    /// The current line passed [`MAX_MESSAGE_BYTES`]; it is skipped to its end.
    skipping: bool,
    data: String,
    /// Set once any `data` line was seen for the message being built.
    has_data: bool,
    /// The message being built passed [`MAX_MESSAGE_BYTES`]: it is dropped
    /// at its blank line.
    oversized: bool,
    event: Option<String>,
    /// The spec's "last event ID buffer": kept across messages.
    last_id: Option<String>,
    retry: Option<std::time::Duration>,
    dropped: u64,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser for a new connection of a client that last saw `last_id`.
    pub fn resuming(last_id: Option<String>) -> SseParser {
        SseParser {
            last_id,
            ..SseParser::default()
        }
    }

    /// The last event ID so far (what a reconnect sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The latest `retry` hint: how long the server asks a client to wait
    /// before reconnecting.
    pub fn retry(&self) -> Option<std::time::Duration> {
        self.retry
    }

    /// Lines and messages dropped for passing [`MAX_MESSAGE_BYTES`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds the next bytes of the stream; returns the messages they
    /// completed, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<SseMessage> {
        if !self.started {
            // The BOM may itself arrive split: hold the first bytes until
            // three are there or they cannot be one.
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(chunk);
            if head.len() < BOM.len() && BOM.starts_with(&head) {
                self.line = head;
                return Vec::new();
            }
            self.started = true;
            return self.lines(head.strip_prefix(BOM).unwrap_or(&head));
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.lines(chunk)
    }

    fn lines(&mut self, mut chunk: &[u8]) -> Vec<SseMessage> {
        let mut out = Vec::new();
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.extend_line(&chunk[..end]);
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            chunk = &chunk[next..];
            let line = std::mem::take(&mut self.line);
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if let Some(msg) = self.line_done(&String::from_utf8_lossy(&line)) {
                out.push(msg);
            }
        }
        self.extend_line(chunk);
        out
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.line.len() + bytes.len() > MAX_MESSAGE_BYTES {
            self.line = Vec::new();
            self.skipping = true;
            self.dropped += 1;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// Interprets one complete line; a blank line dispatches.
    fn line_done(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            let event = self.event.take();
            let oversized = std::mem::take(&mut self.oversized);
            if !std::mem::take(&mut self.has_data) || oversized {
                return None;
            }
            return Some(SseMessage {
                id: self.last_id.clone(),
                event,
                data: std::mem::take(&mut self.data),
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "" => {} // a comment
            "data" if self.oversized => {}
            "data" => {
                if self.data.len() + value.len() >= MAX_MESSAGE_BYTES {
                    self.data = String::new();
                    self.oversized = true;
                    self.dropped += 1;
                    return None;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // An empty type means the default, `message`.
            "event" => self.event = (!value.is_empty()).then(|| value.to_owned()),
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(std::time::Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_one_message_per_event_and_one_data_field_per_line() {
        assert_eq!(
            frame(3, "table.state", "{}"),
            "id: 3\nevent: table.state\ndata: {}\n\n"
        );
        assert_eq!(
            frame(4, "a\nid: 9", "x\r\ny\rz"),
            "id: 4\nevent: a id: 9\ndata: x\ndata: y\ndata: z\n\n"
        );
        let mut parser = SseParser::default();
        assert_eq!(
            parser.push(frame(5, "e", "one\ntwo").as_bytes()),
            vec![SseMessage {
                id: Some("5".into()),
                event: Some("e".into()),
                data: "one\ntwo".into()
            }]
        );
    }

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

    fn one(id: Option<&str>, event: Option<&str>, data: &str) -> SseMessage {
        SseMessage {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    /// Feeds `stream` cut at every pair of byte positions (so every
    /// multi-byte character and every CR/LF pair is split somewhere) and
    /// checks that each cut gives the same messages.
    fn parse_every_split(stream: &[u8]) -> Vec<SseMessage> {
        let mut whole = SseParser::default();
        let expected = whole.push(stream);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let mut p = SseParser::default();
                let mut got = p.push(&stream[..i]);
                got.extend(p.push(&stream[i..j]));
                got.extend(p.push(&stream[j..]));
                assert_eq!(got, expected, "cut at {i} and {j}");
            }
        }
        expected
    }

    #[test]
    fn a_multi_byte_character_split_across_chunks_is_kept() {
        let msgs = parse_every_split("data: señal ✓ 🍽\n\n".as_bytes());
        assert_eq!(msgs, vec![one(None, None, "señal ✓ 🍽")]);
    }

    #[test]
    fn lines_may_end_in_lf_cr_or_crlf() {
        for stream in [
            "id: 1\nevent: a\ndata: x\n\n",
            "id: 1\r\nevent: a\r\ndata: x\r\n\r\n",
            "id: 1\revent: a\rdata: x\r\r",
            "id: 1\r\nevent: a\rdata: x\n\r\n",
        ] {
            let msgs = parse_every_split(stream.as_bytes());
            assert_eq!(msgs, vec![one(Some("1"), Some("a"), "x")], "{stream:?}");
        }
    }

    #[test]
    fn a_cr_at_the_end_of_a_chunk_and_lf_at_the_start_of_the_next_end_one_line() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: a\r").is_empty());
        assert!(p.push(b"\n").is_empty(), "CRLF is one line end, not two");
        assert!(p.push(b"data: b\r").is_empty());
        assert_eq!(p.push(b"\r"), vec![one(None, None, "a\nb")]);
    }

    #[test]
    fn data_lines_join_and_fields_follow_the_spec() {
        let stream = "\u{feff}: a comment\ndata\ndata:x\ndata:  y\nevent: e\nid: 7\nfoo: bar\n\n\
                      data: z\n\n\
                      id\nevent: only-type\n\n\
                      event: x\nevent\n\
                      data: w\n\n\
                      data: no blank line yet";
        let msgs = parse_every_split(stream.as_bytes());
        assert_eq!(
            msgs,
            vec![
                one(Some("7"), Some("e"), "\nx\n y"),
                // The last event id carries over; the type does not.
                one(Some("7"), None, "z"),
                // An empty `id` clears it; a block without data is no event.
                one(None, None, "w"),
            ]
        );
    }

    #[test]
    fn a_bom_is_skipped_only_at_the_start_of_the_stream() {
        let msgs = parse_every_split("\u{feff}data: a\n\n\u{feff}data: b\n\n".as_bytes());
        assert_eq!(
            msgs,
            vec![one(None, None, "a")],
            "a later BOM is part of a field name, so `\u{feff}data` is ignored"
        );
    }

    #[test]
    fn retry_and_the_last_event_id_are_kept_for_the_reconnect() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"retry: 2000\n\nretry: soon\n\nid: 9\n\n")
                .is_empty()
        );
        assert_eq!(p.retry(), Some(Duration::from_millis(2000)));
        assert_eq!(
            p.last_event_id(),
            Some("9"),
            "an id-only block still counts"
        );
        let mut next = SseParser::resuming(Some("9".into()));
        assert_eq!(next.push(b"data: a\n\n"), vec![one(Some("9"), None, "a")]);
    }

    #[test]
    fn an_endless_line_or_message_is_dropped_not_buffered() {
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_MESSAGE_BYTES / 2 + 1];
        assert!(p.push(b"data: ").is_empty());
        for _ in 0..4 {
            assert!(p.push(&big).is_empty());
        }
        assert!(p.line.capacity() <= MAX_MESSAGE_BYTES);
        assert_eq!(p.push(b"\ndata: ok\n\n"), vec![one(None, None, "ok")]);
        for _ in 0..3 {
            p.push(b"data: ");
            p.push(&big);
            p.push(b"\n");
        }
        assert_eq!(p.push(b"\ndata: next\n\n"), vec![one(None, None, "next")]);
        assert_eq!(p.dropped(), 2);
    }
}
