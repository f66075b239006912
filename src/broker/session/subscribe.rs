//! SUBSCRIBE and UNSUBSCRIBE: filters screened and booked against
//! `mqtt.max_subscriptions` and `mqtt.max_filters` here, the rest relayed
//! to the router, whose SUBACK gets the refusals merged back in.

use super::{End, Session};
use crate::broker::screen;
use rumqttd::protocol::{Packet, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe};
use std::sync::atomic::Ordering::Relaxed;

impl Session {
    /// Screens a SUBSCRIBE: refused filters get 0x80, the rest go to the
    /// router, whose SUBACK is merged back in order ([`Self::merge_suback`]).
    pub(super) async fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), End> {
        let pkid = subscribe.pkid;
        let mut refused = Vec::with_capacity(subscribe.filters.len());
        let mut kept = Vec::new();
        for f in subscribe.filters {
            let ok = match screen::filter(&f.path) {
                Err(refusal) => {
                    self.shared.refused_topic(
                        &self.client_id,
                        "subscribe",
                        f.path.as_bytes(),
                        refusal,
                    );
                    false
                }
                Ok(()) => self.subscription_room(&f.path),
            };
            refused.push(!ok);
            if ok {
                kept.push(f);
            }
        }
        if kept.is_empty() {
            let return_codes = vec![SubscribeReasonCode::Failure; refused.len()];
            self.queue(Packet::SubAck(SubAck { pkid, return_codes }, None));
            return Ok(());
        }
        if refused.contains(&true) {
            self.subacks.insert(pkid, refused);
        }
        let filters = kept;
        self.subscribing
            .insert(pkid, filters.iter().map(|f| f.path.clone()).collect());
        self.forward(Packet::Subscribe(Subscribe { pkid, filters }, None));
        Ok(())
    }

    /// Whether this connection may add `filter` (`mqtt.max_subscriptions`
    /// per connection, and [`crate::broker::limits::Filters`]); counts it if so.
    fn subscription_room(&mut self, filter: &str) -> bool {
        if self.subscriptions.contains(filter) {
            return true;
        }
        let limit = if self.subscriptions.len() >= self.shared.mqtt.max_subscriptions {
            Some("mqtt.max_subscriptions")
        } else {
            self.shared.filters.admit(&self.owner, filter).err()
        };
        if let Some(limit) = limit {
            self.shared
                .metrics
                .mqtt
                .subscriptions_refused
                .fetch_add(1, Relaxed);
            self.shared.noise("subscriptions", |suppressed| {
                tracing::warn!(client = ?self.client_id, suppressed, "MQTT subscription refused: {limit} reached");
            });
            return false;
        }
        self.subscriptions.insert(filter.to_string());
        true
    }

    /// The router granted (some of) a SUBSCRIBE: from now on what goes to
    /// those filters is booked against this client ([`crate::broker::flow`]).
    pub(super) fn booked(&mut self, ack: &SubAck) {
        let Some(filters) = self.subscribing.remove(&ack.pkid) else {
            return;
        };
        for (filter, code) in filters.iter().zip(&ack.return_codes) {
            if *code != SubscribeReasonCode::Failure {
                self.flow.subscribed(filter);
            }
        }
    }

    /// The router's SUBACK with 0x80 put back where filters were refused.
    pub(super) fn merge_suback(&mut self, ack: SubAck) -> SubAck {
        let Some(refused) = self.subacks.remove(&ack.pkid) else {
            return ack;
        };
        let mut routed = ack.return_codes.into_iter();
        let return_codes = refused
            .into_iter()
            .map(|refused| match refused {
                true => SubscribeReasonCode::Failure,
                false => routed.next().unwrap_or(SubscribeReasonCode::Failure),
            })
            .collect();
        SubAck {
            pkid: ack.pkid,
            return_codes,
        }
    }

    /// Screens an UNSUBSCRIBE and answers it here: the router acknowledges
    /// only filters that were subscribed, once per filter, so a client
    /// unsubscribing anything else would wait forever.
    pub(super) async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Result<(), End> {
        if unsubscribe.filters.is_empty() {
            return Err(self.protocol_error("MQTT UNSUBSCRIBE without filters (§3.10.3)"));
        }
        let pkid = unsubscribe.pkid;
        let mut filters = Vec::new();
        for f in unsubscribe.filters {
            match screen::filter(&f) {
                Ok(()) => {
                    self.subscriptions.remove(&f);
                    self.flow.unsubscribed(&f);
                    filters.push(f);
                }
                Err(refusal) => {
                    self.shared
                        .refused_topic(&self.client_id, "unsubscribe", f.as_bytes(), refusal)
                }
            }
        }
        if !filters.is_empty() {
            self.forward(Packet::Unsubscribe(Unsubscribe { pkid, filters }, None));
        }
        self.queue(Packet::UnsubAck(
            UnsubAck {
                pkid,
                reasons: Vec::new(),
            },
            None,
        ));
        Ok(())
    }
}
