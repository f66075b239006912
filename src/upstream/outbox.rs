//! Which publishes await their PUBACK, and how far the watermark may go.
//!
//! rumqttc does not say which packet id a publish got; it reports
//! `Outgoing::Publish(pkid)` in the order the publishes were handed to it,
//! and `PubAck(pkid)` when the broker acknowledges. The outbox pairs them
//! up: every publish is queued as unsent, takes the next pkid the event
//! loop reports, and is done at its PUBACK. A tracked publish carries the
//! seq it covers (an event, or the top of a gap); the watermark moves only
//! across a prefix of tracked entries that are all acknowledged, so a
//! PUBACK that overtakes an earlier one never skips an event.
//!
//! Pure bookkeeping: no I/O, no clock.

use crate::domain::Seq;
use std::collections::{HashMap, VecDeque};

/// One publish, tracked or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// Covers the log up to the entry's seq (index into the entries).
    Entry(u64),
    /// Status and retained state: not part of the log.
    Other,
}

#[derive(Debug)]
struct Entry {
    through: Seq,
    acked: bool,
    /// Unix milliseconds of the event (0: unknown), for the backlog age.
    ts_ms: u64,
}

#[derive(Debug)]
pub struct Outbox {
    /// Handed to the client, no pkid reported yet, in order.
    unsent: VecDeque<Tag>,
    /// Sent, awaiting PUBACK.
    by_pkid: HashMap<u16, Tag>,
    /// Tracked entries in seq order; `first` is the id of the front one.
    entries: VecDeque<Entry>,
    first: u64,
    /// Every seq up to this is acknowledged.
    acked: Seq,
    window: usize,
}

impl Outbox {
    /// Starts at the watermark `acked`; at most `window` publishes await
    /// their PUBACK at once.
    pub fn new(acked: Seq, window: usize) -> Outbox {
        Outbox {
            unsent: VecDeque::new(),
            by_pkid: HashMap::new(),
            entries: VecDeque::new(),
            first: 0,
            acked,
            window: window.max(1),
        }
    }

    /// The watermark: every seq up to it is acknowledged upstream.
    pub fn acked(&self) -> Seq {
        self.acked
    }

    /// Whether another publish may be handed to the client.
    pub fn has_room(&self) -> bool {
        self.unsent.len() + self.by_pkid.len() < self.window
    }

    /// Nothing awaits a PUBACK.
    pub fn is_idle(&self) -> bool {
        self.unsent.is_empty() && self.by_pkid.is_empty()
    }

    /// The age source of the backlog: the oldest entry not acknowledged.
    pub fn oldest_unacked_ms(&self) -> Option<u64> {
        self.entries.iter().find(|e| !e.acked).map(|e| e.ts_ms)
    }

    /// A publish that covers the log up to `through` was handed over.
    pub fn track(&mut self, through: Seq, ts_ms: u64) {
        let id = self.first + self.entries.len() as u64;
        self.entries.push_back(Entry {
            through,
            acked: false,
            ts_ms,
        });
        self.unsent.push_back(Tag::Entry(id));
    }

    /// A publish outside the log (status, retained state) was handed over.
    pub fn other(&mut self) {
        self.unsent.push_back(Tag::Other);
    }

    /// Events up to `through` need no publish (filtered out): they count
    /// as acknowledged once everything before them is.
    pub fn skip(&mut self, through: Seq) {
        self.entries.push_back(Entry {
            through,
            acked: true,
            ts_ms: 0,
        });
        self.advance();
    }

    /// The event loop reported `Outgoing::Publish(pkid)`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(tag) = self.unsent.pop_front() {
            self.by_pkid.insert(pkid, tag);
        }
    }

    /// A PUBACK for `pkid`; returns the new watermark if it moved.
    pub fn puback(&mut self, pkid: u16) -> Option<Seq> {
        let Some(Tag::Entry(id)) = self.by_pkid.remove(&pkid) else {
            return None;
        };
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        if let Some(entry) = self.entries.get_mut(index) {
            entry.acked = true;
        }
        let before = self.acked;
        self.advance();
        (self.acked > before).then_some(self.acked)
    }

    fn advance(&mut self) {
        while self.entries.front().is_some_and(|e| e.acked) {
            if let Some(entry) = self.entries.pop_front() {
                self.acked = self.acked.max(entry.through);
                self.first += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_moves_only_across_acknowledged_prefixes() {
        let mut out = Outbox::new(10, 8);
        out.other();
        out.track(11, 0);
        out.track(12, 0);
        out.skip(13);
        out.track(14, 0);
        for pkid in 1..=4 {
            out.sent(pkid);
        }
        assert_eq!(out.puback(1), None, "status is not in the log");
        assert_eq!(out.puback(3), None, "12 acked before 11: no move");
        assert_eq!(out.acked(), 10);
        assert_eq!(out.puback(2), Some(13), "11, 12 and the skipped 13");
        assert_eq!(out.puback(4), Some(14));
        assert!(out.is_idle());
    }

    #[test]
    fn the_window_counts_unsent_and_unacknowledged() {
        let mut out = Outbox::new(0, 2);
        out.track(1, 5);
        out.track(2, 6);
        assert!(!out.has_room());
        out.sent(7);
        assert!(!out.has_room());
        assert_eq!(out.oldest_unacked_ms(), Some(5));
        out.sent(8);
        assert_eq!(out.puback(7), Some(1));
        assert!(out.has_room());
        assert_eq!(out.oldest_unacked_ms(), Some(6));
        assert_eq!(out.puback(99), None, "an unknown pkid changes nothing");
    }
}
