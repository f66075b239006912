//! Backpressure from subscribers to publishers, so the router never drops
//! a message a connected subscriber is still reading.
//!
//! rumqttd's router keeps every filter's messages in a commit log of at
//! most `mqtt.segments` × `mqtt.segment_bytes` (`segments/mod.rs`
//! `apply_retention`) and hands each link at most 200 of them
//! (`MAX_CHANNEL_CAPACITY`) before it pauses the link
//! (`Notification::Unschedule`). It never slows a publisher: when a
//! subscriber (or the router itself) falls behind by more than the log
//! holds, the oldest segment is freed and the subscriber's cursor jumps
//! over what it never got (`router/routing.rs` `forward_device_data`,
//! "Read cursor start jumped"). Under load that dropped almost every
//! QoS 0 message.
//!
//! So each session books, per subscriber and filter, the bytes it routes
//! that the subscriber has not received yet (the router's own size, 4 +
//! topic + payload; one copy per matching filter, as the router sends
//! them). A publish waits, and its session stops reading its socket (TCP
//! pushes the client back), while any subscriber it goes to owes more
//! than [`Flows::limit`], half of what the router is sure to keep
//! (`mqtt.segments` − 1 full segments). The subscriber's session pays
//! back as messages arrive from its link, which it reads only as fast as
//! its socket takes them; below half the limit the waiting publishers go
//! on. A subscriber that holds a publisher for [`MAX_HOLD`] is closed
//! (like a stalled stream client), so a stuck dashboard cannot stop
//! sensor ingest for long.
//!
//! The books err on the side of owing less: a filter is booked only once
//! the router's SUBACK came back (earlier publishes may already be in the
//! log behind its cursor), retained copies and copies that were never
//! booked never make a balance negative.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Longest a publish waits for one subscriber to catch up; that
/// subscriber is then closed and the publish goes on.
pub const MAX_HOLD: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every connected subscriber's books.
pub struct Flows {
    /// Bytes a subscriber may owe before publishers to it wait.
    limit: u64,
    flows: Mutex<Vec<Arc<Flow>>>,
    /// How many flows are over the limit (no publish looks further while
    /// none is).
    over: AtomicUsize,
}

/// One session's subscriptions and what it owes on each.
#[derive(Default)]
pub struct Flow {
    filters: Mutex<Vec<Owed>>,
    /// Owes more than the limit; cleared below half of it.
    over: AtomicBool,
    /// Woken when `over` clears or the session ends.
    caught_up: Notify,
    /// Told by a publisher that waited [`MAX_HOLD`]: close the session.
    kicked: Notify,
    ended: AtomicBool,
}

struct Owed {
    filter: String,
    bytes: u64,
}

/// The size the router books for a message (`router/logs.rs`
/// `PublishData::size`).
pub fn size(topic: &[u8], payload: &[u8]) -> u64 {
    (4 + topic.len() + payload.len()) as u64
}

impl Flows {
    /// `segments` and `segment_bytes` as given to the router.
    pub fn new(segments: usize, segment_bytes: usize) -> Flows {
        let kept = (segments.saturating_sub(1).max(1) * segment_bytes) as u64;
        Flows {
            limit: kept / 2,
            flows: Mutex::new(Vec::new()),
            over: AtomicUsize::new(0),
        }
    }

    /// A new session's books, until [`Flows::close`].
    pub fn open(&self) -> Arc<Flow> {
        let flow = Arc::new(Flow::default());
        lock(&self.flows).push(Arc::clone(&flow));
        flow
    }

    /// Forgets a session; publishers waiting for it go on.
    pub fn close(&self, flow: &Arc<Flow>) {
        flow.ended.store(true, Ordering::Release);
        lock(&self.flows).retain(|f| !Arc::ptr_eq(f, flow));
        if flow.over.swap(false, Ordering::AcqRel) {
            self.over.fetch_sub(1, Ordering::AcqRel);
        }
        flow.caught_up.notify_waiters();
    }

    /// Whether any subscriber owes over the limit.
    pub fn any_behind(&self) -> bool {
        self.over.load(Ordering::Acquire) > 0
    }

    /// A subscriber other than `own` that `topic` goes to and that owes
    /// over the limit.
    fn behind(&self, topic: &str, own: &Arc<Flow>) -> Option<Arc<Flow>> {
        if self.over.load(Ordering::Acquire) == 0 {
            return None;
        }
        lock(&self.flows)
            .iter()
            .find(|f| !Arc::ptr_eq(f, own) && f.over.load(Ordering::Acquire) && f.wants(topic))
            .cloned()
    }

    /// Waits until no subscriber of `topic` owes over the limit; one that
    /// does for [`MAX_HOLD`] is told to close. Returns whether it waited
    /// and how many subscribers it closed.
    /// The publisher's own subscriptions (`own`) never hold it: it reads
    /// its own link between packets, but not while it waits here.
    pub async fn wait(&self, topic: &str, own: &Arc<Flow>) -> (bool, u64) {
        let mut held = false;
        let mut closed = 0;
        while let Some(flow) = self.behind(topic, own) {
            let caught_up = flow.caught_up.notified();
            tokio::pin!(caught_up);
            caught_up.as_mut().enable();
            if !flow.over.load(Ordering::Acquire) || flow.ended.load(Ordering::Acquire) {
                continue;
            }
            held = true;
            if tokio::time::timeout(MAX_HOLD, caught_up).await.is_err() {
                flow.kicked.notify_one();
                self.close(&flow);
                closed += 1;
            }
        }
        (held, closed)
    }

    /// Books a message about to be routed on `topic` to every subscriber
    /// whose filters match (the router sends one copy per filter).
    pub fn route(&self, topic: &str, size: u64) {
        for flow in lock(&self.flows).iter() {
            let mut filters = lock(&flow.filters);
            let mut total = 0;
            let mut matched = false;
            for owed in filters.iter_mut() {
                if matches(topic, &owed.filter) {
                    owed.bytes += size;
                    matched = true;
                }
                total += owed.bytes;
            }
            if matched && total > self.limit && !flow.over.swap(true, Ordering::AcqRel) {
                self.over.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// A copy of a message on `topic` reached `flow`'s session from the
    /// router: paid back on the matching filter that owes the most.
    pub fn received(&self, flow: &Flow, topic: &str, size: u64) {
        let mut filters = lock(&flow.filters);
        if let Some(owed) = filters
            .iter_mut()
            .filter(|o| matches(topic, &o.filter))
            .max_by_key(|o| o.bytes)
        {
            owed.bytes = owed.bytes.saturating_sub(size);
        }
        if flow.over.load(Ordering::Acquire) {
            let total: u64 = filters.iter().map(|o| o.bytes).sum();
            if total <= self.limit / 2 && flow.over.swap(false, Ordering::AcqRel) {
                self.over.fetch_sub(1, Ordering::AcqRel);
                flow.caught_up.notify_waiters();
            }
        }
    }
}

impl Flow {
    /// Books `filter` from now on (the router acknowledged it).
    pub fn subscribed(&self, filter: &str) {
        let mut filters = lock(&self.filters);
        if !filters.iter().any(|o| o.filter == filter) {
            filters.push(Owed {
                filter: filter.to_string(),
                bytes: 0,
            });
        }
    }

    /// Stops booking `filter`; what it owed is forgotten (the router will
    /// not send it).
    pub fn unsubscribed(&self, filter: &str) {
        lock(&self.filters).retain(|o| o.filter != filter);
    }

    fn wants(&self, topic: &str) -> bool {
        lock(&self.filters)
            .iter()
            .any(|o| matches(topic, &o.filter))
    }

    /// Resolves when a publisher gave up waiting for this session.
    pub async fn kicked(&self) {
        self.kicked.notified().await;
    }
}

/// The router's own matching. Topics and filters here passed
/// [`crate::broker::screen`]; the first-byte check is repeated because
/// `matches` panics on a multi-byte first character (docs/MQTT.md).
fn matches(topic: &str, filter: &str) -> bool {
    topic.as_bytes().first().is_none_or(u8::is_ascii) && rumqttd::protocol::matches(topic, filter)
}
