//! The broker's books for what a peer can make it hold: sockets that have
//! not logged in, the router's filters, retained messages, and QoS 2 ids
//! of persistent clients.
//!
//! Each is a std mutex around a small map, held for a lookup and never
//! across an await; all of them live in [`super::Shared`].

use crate::config::MqttConfig;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// Persistent clients whose QoS 2 ids are kept between connections. Past
/// it, the book of a client that is not connected is dropped first.
pub const MAX_QOS2_SESSIONS: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sockets that have not sent CONNECT, in arrival order. When a cap is
/// reached the oldest socket (of that IP, or of all) is closed for the new
/// one: a silent socket can delay a login by at most one round trip, never
/// lock it out.
pub struct Pending {
    max: usize,
    max_per_ip: usize,
    book: Arc<Mutex<PendingBook>>,
}

#[derive(Default)]
struct PendingBook {
    next: u64,
    /// By arrival: the peer and the token that closes it.
    sockets: BTreeMap<u64, (IpAddr, CancellationToken)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl PendingBook {
    fn remove(&mut self, id: u64) -> Option<CancellationToken> {
        let (ip, token) = self.sockets.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(token)
    }
}

/// One pending socket's place; dropping it (after CONNECT, or at close)
/// frees it.
pub struct PendingSlot {
    id: u64,
    evicted: CancellationToken,
    book: Arc<Mutex<PendingBook>>,
}

impl PendingSlot {
    /// Resolves when a newer socket took this one's place.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await;
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.book).remove(self.id);
    }
}

impl Pending {
    pub fn new(max: usize, max_per_ip: usize) -> Pending {
        Pending {
            max,
            max_per_ip,
            book: Arc::default(),
        }
    }

    /// A place for a new socket from `ip`, and how many older sockets were
    /// closed to make it.
    pub fn admit(&self, ip: IpAddr) -> (PendingSlot, u64) {
        let mut book = lock(&self.book);
        let mut evicted = 0;
        if book.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            let oldest = book
                .sockets
                .iter()
                .find(|(_, (from, _))| *from == ip)
                .map(|(id, _)| *id);
            if let Some(token) = oldest.and_then(|id| book.remove(id)) {
                token.cancel();
                evicted += 1;
            }
        }
        if book.sockets.len() >= self.max {
            let oldest = book.sockets.keys().next().copied();
            if let Some(token) = oldest.and_then(|id| book.remove(id)) {
                token.cancel();
                evicted += 1;
            }
        }
        let id = book.next;
        book.next += 1;
        let token = CancellationToken::new();
        book.sockets.insert(id, (ip, token.clone()));
        *book.per_ip.entry(ip).or_default() += 1;
        drop(book);
        let slot = PendingSlot {
            id,
            evicted: token,
            book: Arc::clone(&self.book),
        };
        (slot, evicted)
    }
}

/// The filters the router holds. It keeps a log for every filter ever
/// subscribed, even after the last subscriber left, so the bound is on
/// distinct filters since start: in total, and per user (anonymous
/// clients are one), so one user cannot use up what others need.
pub struct Filters {
    max: usize,
    max_per_user: usize,
    book: Mutex<FilterBook>,
}

#[derive(Default)]
struct FilterBook {
    known: HashSet<String>,
    /// New filters each user brought to the router.
    added: HashMap<String, usize>,
}

impl Filters {
    pub fn new(max: usize, max_per_user: usize) -> Filters {
        Filters {
            max,
            max_per_user,
            book: Mutex::default(),
        }
    }

    /// Whether the router may take `filter` from `owner`: it has it
    /// already, or there is room (then it is counted); else the limit hit.
    pub fn admit(&self, owner: &str, filter: &str) -> Result<(), &'static str> {
        let mut book = lock(&self.book);
        if book.known.contains(filter) {
            return Ok(());
        }
        if book.known.len() >= self.max {
            return Err("mqtt.max_filters");
        }
        let added = book.added.get(owner).copied().unwrap_or(0);
        if added >= self.max_per_user {
            return Err("mqtt.max_subscriptions (new filters per user)");
        }
        book.known.insert(filter.to_string());
        book.added.insert(owner.to_string(), added + 1);
        Ok(())
    }
}

/// Retained messages clients left in the router, by topic, with who left
/// each (the user who published last pays for it) and its size (topic and
/// payload bytes).
pub struct Retained {
    max: usize,
    max_bytes: usize,
    max_per_user: usize,
    max_bytes_per_user: usize,
    book: Mutex<RetainedBook>,
}

#[derive(Default)]
struct RetainedBook {
    topics: HashMap<String, (String, usize)>,
    bytes: usize,
    /// Per owner: topics and bytes.
    users: HashMap<String, (usize, usize)>,
}

impl RetainedBook {
    fn remove(&mut self, topic: &str) {
        if let Some((owner, size)) = self.topics.remove(topic) {
            self.bytes -= size;
            if let Some(user) = self.users.get_mut(&owner) {
                user.0 -= 1;
                user.1 -= size;
                if user.0 == 0 {
                    self.users.remove(&owner);
                }
            }
        }
    }
}

impl Retained {
    pub fn new(mqtt: &MqttConfig) -> Retained {
        Retained {
            max: mqtt.max_retained,
            max_bytes: mqtt.max_retained_bytes,
            max_per_user: mqtt.max_retained_per_user,
            max_bytes_per_user: mqtt.max_retained_bytes_per_user,
            book: Mutex::default(),
        }
    }

    /// Records `owner` retaining `size` bytes on `topic` (replacing what
    /// was there), or says which limit it would break (nothing changes).
    pub fn keep(&self, owner: &str, topic: &str, size: usize) -> Result<(), &'static str> {
        let mut book = lock(&self.book);
        let (old_owner, old_size) = match book.topics.get(topic) {
            Some((o, s)) => (Some(o.as_str()), *s),
            None => (None, 0),
        };
        let topics = book.topics.len() + usize::from(old_owner.is_none());
        let bytes = book.bytes - old_size + size;
        let (mut user_topics, mut user_bytes) = book.users.get(owner).copied().unwrap_or((0, 0));
        if old_owner == Some(owner) {
            user_bytes -= old_size;
        } else {
            user_topics += 1;
        }
        user_bytes += size;
        if topics > self.max {
            return Err("mqtt.max_retained reached");
        }
        if bytes > self.max_bytes {
            return Err("mqtt.max_retained_bytes reached");
        }
        if user_topics > self.max_per_user {
            return Err("mqtt.max_retained_per_user reached");
        }
        if user_bytes > self.max_bytes_per_user {
            return Err("mqtt.max_retained_bytes_per_user reached");
        }
        book.remove(topic);
        book.topics
            .insert(topic.to_string(), (owner.to_string(), size));
        book.bytes += size;
        let user = book.users.entry(owner.to_string()).or_default();
        user.0 += 1;
        user.1 += size;
        Ok(())
    }

    /// The router dropped `topic`'s retained message (a PUBLISH with an
    /// empty payload clears it, retained or not).
    pub fn clear(&self, topic: &str) {
        lock(&self.book).remove(topic);
    }
}

/// The QoS 2 packet ids a session answered itself (set commands, refused
/// publishes) and still awaits PUBREL for.
pub type Qos2Ids = Arc<Mutex<HashSet<u16>>>;

/// [`Qos2Ids`] of persistent clients, by client id, so a resend after a
/// reconnect (its PUBREC was lost) is recognised and not applied again.
#[derive(Default)]
pub struct Qos2Sessions {
    by_client: Mutex<HashMap<String, Qos2Ids>>,
}

impl Qos2Sessions {
    /// The ids for a new session of `client_id`: a persistent session gets
    /// the ones its earlier connections left (MQTT §4.3.3); a clean one
    /// starts empty and discards them.
    pub fn open(&self, client_id: &str, clean_session: bool) -> Qos2Ids {
        let mut by_client = lock(&self.by_client);
        if clean_session {
            by_client.remove(client_id);
            return Qos2Ids::default();
        }
        if let Some(ids) = by_client.get(client_id) {
            return Arc::clone(ids);
        }
        if by_client.len() >= MAX_QOS2_SESSIONS {
            // A book no session holds (only the map's reference is left).
            let idle = by_client
                .iter()
                .find(|(_, ids)| Arc::strong_count(ids) == 1)
                .map(|(id, _)| id.clone());
            if let Some(idle) = idle {
                by_client.remove(&idle);
            }
        }
        let ids = Qos2Ids::default();
        if by_client.len() < MAX_QOS2_SESSIONS {
            by_client.insert(client_id.to_string(), Arc::clone(&ids));
        }
        ids
    }

    /// At the end of a session: a book with nothing pending is dropped.
    pub fn close(&self, client_id: &str, ids: &Qos2Ids) {
        let mut by_client = lock(&self.by_client);
        let kept = by_client
            .get(client_id)
            .is_some_and(|kept| Arc::ptr_eq(kept, ids));
        if kept && lock(ids).is_empty() {
            by_client.remove(client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_socket_makes_room_per_ip_and_in_total() {
        let pending = Pending::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let (a1, n) = pending.admit(a);
        assert_eq!(n, 0);
        let (a2, _) = pending.admit(a);
        let (a3, n) = pending.admit(a);
        assert_eq!(n, 1, "a's oldest made room");
        assert!(a1.evicted.is_cancelled());
        assert!(!a2.evicted.is_cancelled() && !a3.evicted.is_cancelled());
        let (b1, n) = pending.admit(b);
        assert_eq!(n, 0, "three in total fit");
        let (_b2, n) = pending.admit(b);
        assert_eq!(n, 1, "the oldest of all made room");
        assert!(a2.evicted.is_cancelled());
        drop((a1, a2, a3, b1));
        assert_eq!(lock(&pending.book).sockets.len(), 1);
    }

    #[test]
    fn filters_are_counted_once_and_bounded_per_user_and_in_total() {
        let f = Filters::new(3, 2);
        assert!(f.admit("u", "a/#").is_ok());
        assert!(f.admit("u", "a/#").is_ok());
        assert!(f.admit("u", "b").is_ok());
        assert!(f.admit("u", "c").is_err(), "u added two");
        assert!(f.admit("v", "b").is_ok(), "a known filter is free");
        assert!(f.admit("v", "c").is_ok());
        assert!(f.admit("w", "d").is_err(), "three in total");
    }

    fn retained() -> Retained {
        Retained {
            max: 3,
            max_bytes: 100,
            max_per_user: 2,
            max_bytes_per_user: 60,
            book: Mutex::default(),
        }
    }

    #[test]
    fn retained_messages_are_bounded_per_user_and_in_total() {
        let r = retained();
        assert_eq!(r.keep("u", "a", 30), Ok(()));
        assert_eq!(r.keep("u", "a", 60), Ok(()), "a replacement counts once");
        assert!(r.keep("u", "b", 1).is_err(), "u's bytes are used up");
        r.clear("a");
        assert_eq!(r.keep("u", "b", 30), Ok(()), "clearing freed them");
        assert_eq!(r.keep("u", "c", 30), Ok(()));
        assert!(r.keep("u", "d", 1).is_err(), "u's topics are used up");
        assert_eq!(r.keep("v", "e", 40), Ok(()));
        assert!(r.keep("w", "f", 1).is_err(), "three topics in total");
        assert!(r.keep("v", "b", 50).is_err(), "100 bytes in total");
        assert_eq!(r.keep("v", "b", 20), Ok(()), "v takes over b from u");
        let book = lock(&r.book);
        assert_eq!(book.users.get("u"), Some(&(1, 30)));
        assert_eq!(book.users.get("v"), Some(&(2, 60)));
        assert_eq!(book.bytes, 90);
    }

    #[test]
    fn persistent_clients_keep_their_qos2_ids_and_clean_ones_drop_them() {
        let s = Qos2Sessions::default();
        let first = s.open("tablet", false);
        lock(&first).insert(7);
        s.close("tablet", &first);
        drop(first);
        let again = s.open("tablet", false);
        assert!(lock(&again).contains(&7), "kept across the reconnect");
        drop(again);
        assert!(
            lock(&s.open("tablet", true)).is_empty(),
            "a clean session starts afresh"
        );
        assert!(lock(&s.open("tablet", false)).is_empty());
    }
}
