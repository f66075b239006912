//! Bytes to packets and back: reading the CONNECT, decoding with the
//! `mqtt.max_payload` limit, writing a refusal outside a session, and
//! rebuilding router notifications and acknowledgements as MQTT 3.1.1
//! packets.

use crate::broker::Shared;
use crate::broker::transport::{Transport, WsGarbage};
use bytes::{Bytes, BytesMut};
use rumqttd::Notification;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Packet, Protocol as _, PubRec, PubRecReason, Publish};
use std::sync::atomic::Ordering::Relaxed;

/// Reads one whole packet (for CONNECT); `Ok(None)` when the peer closed.
pub(super) async fn read_packet(
    shared: &Shared,
    io: &mut Transport,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, Invalid> {
    loop {
        if let Some(packet) = shared.decode(buf)? {
            return Ok(Some(packet));
        }
        match io.read(buf).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                shared.read_failed(&e);
                return Ok(None);
            }
        }
    }
}

/// Writes a single packet outside a session (refusals), best effort.
pub(super) async fn write_now(io: &mut Transport, packet: Packet) {
    let mut out = BytesMut::new();
    if V4.write(packet, &mut out).is_ok() {
        let _ = io.write(out.freeze()).await;
    }
    io.close().await;
}

/// Bytes that are not MQTT 3.1.1, or a packet over `mqtt.max_payload`
/// (already counted and logged): the connection is closed.
pub(super) enum Invalid {
    /// A CONNECT for another MQTT version (3.1, 5): answered with
    /// "unacceptable protocol version", which clients understand (many
    /// then retry with 3.1.1).
    Version,
    Other,
}

impl Shared {
    /// The next whole packet in `buf`, `None` if more bytes are needed.
    pub(super) fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, Invalid> {
        use rumqttd::protocol::Error;
        match V4.read_mut(buf, self.mqtt.max_payload) {
            Ok(packet) => Ok(Some(packet)),
            Err(Error::InsufficientBytes(_)) => Ok(None),
            Err(Error::PayloadSizeLimitExceeded(size)) => {
                self.too_large(size);
                Err(Invalid::Other)
            }
            Err(e) => {
                self.metrics.mqtt.protocol_errors.fetch_add(1, Relaxed);
                self.noise("protocol", |suppressed| {
                    tracing::warn!(error = ?e, suppressed, "invalid MQTT packet (only MQTT 3.1.1 is spoken); connection closed");
                });
                match e {
                    Error::InvalidProtocol | Error::InvalidProtocolLevel(_) => {
                        Err(Invalid::Version)
                    }
                    _ => Err(Invalid::Other),
                }
            }
        }
    }
}

impl Shared {
    fn too_large(&self, size: usize) {
        self.metrics.mqtt.too_large.fetch_add(1, Relaxed);
        self.noise("too_large", |suppressed| {
            tracing::warn!(
                size,
                max = self.mqtt.max_payload,
                suppressed,
                "MQTT packet over mqtt.max_payload; connection closed"
            );
        });
    }

    /// Counts and logs (rate-limited) what the transport refused as
    /// garbage ([`WsGarbage`]); any other read error is a lost peer.
    pub(super) fn read_failed(&self, e: &std::io::Error) {
        match e.get_ref().and_then(|e| e.downcast_ref::<WsGarbage>()) {
            Some(WsGarbage::TooLarge { size, .. }) => self.too_large(*size),
            Some(garbage @ WsGarbage::Text) => {
                self.metrics.mqtt.protocol_errors.fetch_add(1, Relaxed);
                self.noise("protocol", |suppressed| {
                    tracing::warn!(suppressed, "{garbage}; connection closed");
                });
            }
            None => {}
        }
    }
}

/// The packet a router notification becomes on the wire, if any. Every
/// packet is rebuilt without MQTT 5 properties: this is a 3.1.1 listener,
/// and rumqttd's v4 encoder refuses (panics on) properties.
pub(super) fn outgoing(notification: Notification) -> Option<Packet> {
    let packet = match notification {
        Notification::Forward(forward) => Packet::Publish(forward.publish, None),
        Notification::DeviceAck(ack) => ack.into(),
        _ => return None,
    };
    Some(match packet {
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(p, _) => Packet::PubAck(p, None),
        Packet::PubRec(p, _) => Packet::PubRec(p, None),
        Packet::PubRel(p, _) => Packet::PubRel(p, None),
        Packet::PubComp(p, _) => Packet::PubComp(p, None),
        Packet::SubAck(p, _) => Packet::SubAck(p, None),
        Packet::UnsubAck(p, _) => Packet::UnsubAck(p, None),
        Packet::ConnAck(p, _) => Packet::ConnAck(p, None),
        Packet::PingResp(p) => Packet::PingResp(p),
        _ => return None,
    })
}

/// QoS and packet id of a PUBLISH (rumqttd keeps these fields private;
/// its own serialisation has them in the first three bytes).
pub(super) fn qos_and_pkid(publish: &Publish) -> (u8, u16) {
    let mut head = publish.clone();
    head.payload = Bytes::new();
    let head = head.serialize();
    match head.get(..3) {
        Some(&[byte1, hi, lo]) => ((byte1 >> 1) & 0b11, u16::from_be_bytes([hi, lo])),
        _ => (0, 0),
    }
}

pub(super) fn pubrec(pkid: u16) -> Packet {
    Packet::PubRec(
        PubRec {
            pkid,
            reason: PubRecReason::Success,
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_and_pkid_are_read_from_the_wire_form() {
        let mut buf = BytesMut::new();
        // PUBLISH QoS 1, pkid 0x0102, topic "t", payload "x".
        buf.extend_from_slice(&[0x32, 6, 0, 1, b't', 1, 2, b'x']);
        let Ok(Packet::Publish(p, _)) = V4.read_mut(&mut buf, 100) else {
            panic!("not a publish");
        };
        assert_eq!(qos_and_pkid(&p), (1, 0x0102));
        assert_eq!(qos_and_pkid(&Publish::new("t", "x", false)), (0, 0));
    }
}
