//! The upstream bridge (SPEC §7): forwards this site's events, retained
//! table state and status to a broker the restaurant group runs
//! (Mosquitto, EMQX, HiveMQ, VerneMQ), as an MQTT client (rumqttc). Not to
//! be confused with [`crate::broker::bridge`], the daemon's link into its
//! own embedded broker.
//!
//! Store and forward from the event log itself, nothing copied:
//! - The watermark (`bridge.bridged_through`, [`crate::store`]) is the
//!   highest seq the upstream acknowledged. It moves only across a prefix
//!   of PUBACKed events ([`outbox`]) and is written to SQLite at most every
//!   [`SAVE_EVERY`], at every disconnect and at stop. A crash may resend
//!   what was acknowledged in the last second: HQ deduplicates by
//!   (`site`, `seq`), as at-least-once delivery needs anyway.
//! - Each session starts from the watermark: events are read from SQLite
//!   in seq order at most `bridge.backlog_rate` per second, then follow the
//!   hub live. A daemon restart while the link is down loses nothing.
//! - Retention keeps every event above the watermark for
//!   `bridge.max_backlog_days`; past that it deletes them and says so, and
//!   the session sends `gap` `{"from_seq", "to_seq"}` in their place.
//!
//! Connections: rumqttc has no backoff and reconnects only while polled,
//! so each session gets a fresh client and event loop, and between them
//! this loop waits an exponential backoff with jitter
//! (`bridge.reconnect_min` doubling to `bridge.reconnect_max`, each wait
//! between half and all of it). Every failure is logged once, with the
//! wait that follows it, so wrong credentials cost one line per backoff
//! step. The last will publishes `offline` (retained) on `status`; a
//! session publishes `online` and every table's retained state at its
//! CONNACK, and `offline` at stop. The site never waits for the bridge.
//!
//! What `/api/v1/stats` (`bridge`), `/metrics` (`mesero_bridge_*`) and the
//! STATUS line show comes from [`crate::metrics::UpstreamMetrics`].

mod outbox;
pub mod rollup;
mod session;

use crate::config::BridgeConfig;
use crate::domain::Seq;
use crate::hub::{ClientKind, Hub, Subscription};
use crate::metrics::Metrics;
use crate::store::{Change, EventQuery, Store};
use crate::systemd::Heartbeat;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// The watermark is written to SQLite at most this often while events are
/// being acknowledged (each write is a commit: an fsync on the SD card).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A session that stayed connected this long starts the backoff over; a
/// broker that accepts and drops at once keeps backing off.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// What the bridge needs from the daemon.
pub struct Deps {
    pub bridge: BridgeConfig,
    /// `site.id`, carried by every forwarded event.
    pub site: String,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
}

/// The bridge's state across sessions.
struct Upstream {
    deps: Deps,
    /// Woken by every committed event (also while disconnected, to keep
    /// the backlog's age known).
    events: Subscription,
    /// The watermark in memory, and what SQLite has.
    acked: Seq,
    saved: Seq,
    connected: bool,
    /// Beats in every wait of the bridge (connecting, connected, backing
    /// off): an unreachable upstream is normal and must not stop the
    /// watchdog, a hung bridge loop must.
    heartbeat: Heartbeat,
}

/// Runs the bridge until `shutdown`.
pub async fn run(deps: Deps, heartbeat: Heartbeat, shutdown: CancellationToken) {
    let events = deps
        .hub
        .subscribe(ClientKind::Internal, CancellationToken::new());
    deps.metrics.upstream.enabled.store(true, Relaxed);
    let acked = match deps.store.bridged_through().await {
        Ok(Some(acked)) => acked,
        Ok(None) => {
            // First run: start from now; history stays on the site.
            let head = deps.hub.head();
            if let Err(e) = deps
                .store
                .apply(
                    Change::Forwarded { through: head },
                    crate::domain::Actor::System,
                )
                .await
            {
                tracing::error!(error = %e, "upstream bridge: cannot record its starting point");
            }
            head
        }
        Err(e) => {
            tracing::error!(error = %e, "upstream bridge: cannot read its watermark; bridge off");
            return;
        }
    };
    let mut up = Upstream {
        deps,
        events,
        acked,
        saved: acked,
        connected: false,
        heartbeat,
    };
    up.deps.metrics.upstream.acked_seq.store(acked, Relaxed);
    up.refresh_oldest(None).await;
    tracing::info!(
        url = %up.deps.bridge.url,
        client_id = ?up.deps.bridge.client_id,
        prefix = %up.deps.bridge.topic_prefix,
        acked,
        "upstream bridge starting"
    );
    let mut attempt: u32 = 0;
    let mut first = true;
    loop {
        if !first {
            up.deps.metrics.upstream.reconnects.fetch_add(1, Relaxed);
        }
        first = false;
        let ended = session::run(&mut up, &shutdown).await;
        up.save().await;
        let (error, connected_for) = match ended {
            session::Ended::Stopped => break,
            session::Ended::Lost {
                error,
                connected_for,
            } => (error, connected_for),
        };
        up.deps.metrics.upstream.failures.fetch_add(1, Relaxed);
        if connected_for.is_some_and(|d| d >= STABLE_AFTER) {
            attempt = 0;
        }
        let delay = backoff(
            up.deps.bridge.reconnect_min,
            up.deps.bridge.reconnect_max,
            attempt,
            random(),
        );
        attempt = attempt.saturating_add(1);
        if up.connected || up.deps.metrics.upstream.since_ms.load(Relaxed) == 0 {
            up.set_connected(false);
        }
        up.deps.metrics.upstream.set_error(error.clone());
        tracing::warn!(
            error = %error,
            attempt,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            backlog = up.deps.hub.head().saturating_sub(up.acked),
            "upstream bridge down"
        );
        if !up.wait(delay, &shutdown).await {
            break;
        }
    }
    up.save().await;
    up.deps.metrics.upstream.connected.store(false, Relaxed);
    tracing::info!(acked = up.acked, "upstream bridge stopped");
}

impl Upstream {
    fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        self.deps
            .metrics
            .upstream
            .set_connected(connected, SystemTime::now());
    }

    /// The upstream acknowledged everything up to `acked`.
    fn advance(&mut self, acked: Seq, forwarded: u64) {
        self.acked = self.acked.max(acked);
        let u = &self.deps.metrics.upstream;
        u.acked_seq.store(self.acked, Relaxed);
        u.forwarded.fetch_add(forwarded, Relaxed);
    }

    /// Writes the watermark if it moved since the last write.
    async fn save(&mut self) {
        if self.acked <= self.saved {
            return;
        }
        let change = Change::Forwarded {
            through: self.acked,
        };
        match self
            .deps
            .store
            .apply(change, crate::domain::Actor::System)
            .await
        {
            Ok(_) => self.saved = self.acked,
            Err(e) => tracing::warn!(error = %e, "upstream bridge: cannot save its watermark"),
        }
    }

    /// Sets the backlog's age: `known` (the oldest unacknowledged event's
    /// time, from a session), else read from the log.
    async fn refresh_oldest(&mut self, known: Option<u64>) {
        let oldest = match known {
            Some(ms) => ms,
            None if self.deps.hub.head() > self.acked => {
                let query = EventQuery {
                    after: self.acked,
                    limit: 1,
                    ..EventQuery::default()
                };
                match self.deps.store.events(query).await {
                    Ok(page) => page.events.first().map_or(0, |e| ts_ms(&e.ts)),
                    Err(_) => 0,
                }
            }
            None => 0,
        };
        self.deps
            .metrics
            .upstream
            .oldest_unacked_ms
            .store(oldest, Relaxed);
    }

    /// Waits `delay` (false: stopped meanwhile), noting the backlog's age
    /// when the first event of an outage arrives.
    async fn wait(&mut self, delay: Duration, shutdown: &CancellationToken) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(until) => return true,
                _ = self.heartbeat.tick() => self.heartbeat.beat(),
                received = self.events.rx.recv() => {
                    let u = &self.deps.metrics.upstream;
                    if let Ok(p) = received {
                        if p.event.seq > self.acked && u.oldest_unacked_ms.load(Relaxed) == 0 {
                            u.oldest_unacked_ms.store(ts_ms(&p.event.ts), Relaxed);
                        }
                    }
                }
            }
        }
    }
}

/// The wait before reconnect attempt `attempt` (0: the first retry):
/// `min · 2^attempt` capped at `max`, then between half and all of that
/// (`random` picks where), so a fleet of sites that lost the same broker
/// does not come back in step. Never shorter than the wait before it
/// until the cap: each step is at least the last one's upper half.
fn backoff(min: Duration, max: Duration, attempt: u32, random: u64) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let full = min.saturating_mul(factor).min(max);
    let half = full / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(random % spread.saturating_add(1))
}

/// A random number for the jitter, from the process's hash seed and the
/// clock (no crate needed for this).
fn random() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// An event's `ts` in Unix milliseconds (0 if unreadable).
fn ts_ms(ts: &str) -> u64 {
    crate::clock::parse(ts)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for random in [0, 1, 499, 500, u64::MAX] {
            let mut last_top = Duration::ZERO;
            for attempt in 0..40 {
                let d = backoff(min, max, attempt, random);
                let full = min.saturating_mul(1 << attempt.min(6)).min(max);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} of {full:?}"
                );
                assert!(
                    d >= last_top / 2,
                    "never shorter than the last step's lower bound"
                );
                last_top = full;
            }
        }
        assert_eq!(backoff(min, max, 0, 0), Duration::from_millis(500));
    }
}
