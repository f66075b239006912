//! Between the session and the router: messages from the router link
//! batched onto the socket, packets relayed to the router, and the
//! books of [`crate::broker::flow`] kept on both sides (a publish is
//! booked and may wait before it is relayed; a message is paid back as
//! it arrives from the link, which is read only as fast as the socket
//! takes what was read before).

use super::wire::outgoing;
use super::{End, Session};
use crate::broker::flow;
use bytes::Bytes;
use futures_util::FutureExt as _;
use rumqttd::Notification;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Packet, Protocol as _, Publish};
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

/// Outgoing packets are written in batches of at most this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

impl Session {
    /// Queues a router notification and whatever else is already waiting,
    /// so a burst goes out in few writes.
    pub(super) async fn on_notification(&mut self, first: Notification) -> Result<(), End> {
        let mut next = Some(first);
        while let Some(n) = next.take() {
            match n {
                // The router paused this link because its buffer filled up;
                // it resumes only when asked (everything before this is
                // already queued here).
                Notification::Unschedule => {
                    if self.rx.wake().await.is_err() {
                        return Err(End::Router);
                    }
                }
                Notification::Disconnect(..) => return Err(End::Router),
                Notification::Forward(forward) => {
                    self.paid(&forward.publish);
                    self.queue(Packet::Publish(forward.publish, None));
                }
                other => match outgoing(other) {
                    // Answered by `on_unsubscribe` (the router answers
                    // only filters that were subscribed, once each).
                    Some(Packet::UnsubAck(..)) | None => {}
                    Some(Packet::SubAck(ack, _)) => {
                        self.booked(&ack);
                        let ack = self.merge_suback(ack);
                        self.queue(Packet::SubAck(ack, None));
                    }
                    Some(packet) => self.queue(packet),
                },
            }
            if self.out.len() < WRITE_BATCH {
                next = match self.rx.next().now_or_never() {
                    Some(Ok(n)) => n,
                    Some(Err(_)) => return Err(End::Router),
                    None => None,
                };
            }
        }
        self.flush().await.map_err(|_| End::Lost)
    }

    /// A message from the router reached this session: what the books
    /// said it owed is paid back (retained copies were never booked).
    fn paid(&self, publish: &Publish) {
        if publish.retain {
            return;
        }
        if let Ok(topic) = std::str::from_utf8(&publish.topic) {
            let size = flow::size(&publish.topic, &publish.payload);
            self.shared.flows.received(&self.flow, topic, size);
        }
    }

    /// At shutdown: writes what the router still sends (the daemon's
    /// `offline` status, published just before) until it goes quiet.
    pub(super) async fn drain_for_shutdown(&mut self) {
        let until = Instant::now() + super::FLUSH_MAX;
        while let Ok(Ok(Some(n))) = tokio::time::timeout_at(
            until.min(Instant::now() + super::FLUSH_QUIET),
            self.rx.next(),
        )
        .await
        {
            if self.on_notification(n).await.is_err() {
                return;
            }
        }
    }

    pub(super) fn queue(&mut self, packet: Packet) {
        if matches!(packet, Packet::Publish(..)) {
            self.shared.metrics.mqtt.messages_out.fetch_add(1, Relaxed);
        }
        if let Err(e) = V4.write(packet, &mut self.out) {
            tracing::warn!(client = ?self.client_id, error = ?e, "cannot encode an MQTT packet; dropped");
        }
    }

    /// Writes what is queued. Fails when the client takes nothing for
    /// [`super::WRITE_TIMEOUT`], or when a publisher gave up waiting for
    /// it ([`flow::MAX_HOLD`]).
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Taken whole, not split: an idle connection keeps no buffer.
        let bytes = std::mem::take(&mut self.out).freeze();
        let write = tokio::time::timeout(super::WRITE_TIMEOUT, self.io.write(bytes));
        tokio::select! {
            written = write => written.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
            _ = self.flow.kicked() => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Relays a packet to the router. Packets decoded from one read go
    /// to the link's buffer and the router is woken once, by the last
    /// ([`Self::send_unsent`]): the router takes the whole buffer on each
    /// wake-up (`handle_device_payload`), and a wake-up per packet cost
    /// more than routing it.
    pub(super) fn forward(&mut self, packet: Packet) {
        if let Some(previous) = self.unsent.replace(packet) {
            self.tx.buffer().push_back(previous);
        }
    }

    /// Hands the router what [`Self::forward`] kept back, waking it.
    pub(super) async fn send_unsent(&mut self) -> Result<(), End> {
        let Some(packet) = self.unsent.take() else {
            return Ok(());
        };
        // The send waits only while the router's queue is full; the router
        // never waits for a link, so this always resumes. It runs on the
        // broker's own thread, never on the daemon's runtime.
        self.tx
            .send(packet)
            .await
            .map(|_| ())
            .map_err(|_| End::Router)
    }

    /// Relays a client's PUBLISH once no subscriber it goes to is too far
    /// behind ([`flow::Flows::wait`]; meanwhile this client's socket is
    /// not read), booked for each of them.
    pub(super) async fn route(&mut self, mut publish: Publish) -> Result<(), End> {
        // Decoded without a copy, topic and payload point into the read
        // buffer; the router's log keeps messages for a while, and each
        // would keep its whole read chunk alive (tens of MB under load).
        publish.topic = Bytes::copy_from_slice(&publish.topic);
        publish.payload = Bytes::copy_from_slice(&publish.payload);
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            return Ok(());
        };
        if self.shared.flows.any_behind() {
            // What is already decoded goes first, while this one waits.
            self.send_unsent().await?;
        }
        let flows = &self.shared.flows;
        let (held, closed) = tokio::select! {
            waited = flows.wait(topic, &self.flow) => waited,
            _ = self.stop.cancelled() => return Err(End::Shutdown),
        };
        let metrics = &self.shared.metrics.mqtt;
        if held {
            metrics.publishes_held.fetch_add(1, Relaxed);
        }
        if closed > 0 {
            metrics.slow_subscribers_closed.fetch_add(closed, Relaxed);
            self.shared.noise("slow_subscriber", |suppressed| {
                tracing::warn!(publisher = ?self.client_id, topic, hold = ?flow::MAX_HOLD, suppressed, "MQTT subscriber took nothing while holding a publisher back; closed");
            });
        }
        flows.route(topic, flow::size(&publish.topic, &publish.payload));
        self.forward(Packet::Publish(publish, None));
        Ok(())
    }
}
