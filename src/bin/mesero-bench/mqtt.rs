//! A minimal MQTT 3.1.1 client over TCP, just what the load needs:
//! CONNECT, SUBSCRIBE, PUBLISH at QoS 0 and 1, PUBACK, PINGREQ.
//!
//! Hand-written rather than rumqttc: at hundreds of thousands of messages
//! a second rumqttc's event loop (a packet allocated and queued per
//! message, the socket behind a channel) becomes the limit of the tool,
//! not of the broker under test. Here a publisher writes into a
//! `BufWriter` on the socket, so a broker that reads slowly pushes it back
//! through TCP (nothing is dropped on the tool's side), and a subscriber
//! parses frames in place out of one read buffer.

use std::io;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Keep-alive sent in CONNECT, seconds. Long: a load run never idles that long.
const KEEP_ALIVE_S: u16 = 600;

/// Largest frame the reader accepts (the daemon's events are far smaller).
const MAX_FRAME: usize = 1 << 20;

/// One inbound packet the load cares about.
pub enum Packet {
    ConnAck {
        code: u8,
    },
    SubAck,
    PubAck {
        pkid: u16,
    },
    /// A PUBLISH: its QoS, packet id (0 at QoS 0) and payload.
    Publish {
        qos: u8,
        pkid: u16,
        payload: Vec<u8>,
    },
    Other,
}

fn remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A CONNECT with a clean session and optional username/password.
pub fn connect_frame(client_id: &str, user: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.push(4);
    body.push(if user.is_some() { 0xC2 } else { 0x02 });
    body.extend_from_slice(&KEEP_ALIVE_S.to_be_bytes());
    string(client_id.as_bytes(), &mut body);
    if let Some((name, password)) = user {
        string(name.as_bytes(), &mut body);
        string(password.as_bytes(), &mut body);
    }
    let mut out = vec![0x10];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Appends a PUBLISH to `out` (pkid ignored at QoS 0).
pub fn publish_frame(topic: &str, payload: &[u8], qos: u8, pkid: u16, out: &mut Vec<u8>) {
    let len = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload.len();
    out.push(0x30 | (qos << 1));
    remaining_length(len, out);
    string(topic.as_bytes(), out);
    if qos > 0 {
        out.extend_from_slice(&pkid.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn subscribe_frame(filter: &str, qos: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    string(filter.as_bytes(), &mut body);
    body.push(qos);
    let mut out = vec![0x82];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// DISCONNECT: the broker closes the connection after it.
pub const DISCONNECT: [u8; 2] = [0xE0, 0];

fn puback_frame(pkid: u16) -> [u8; 4] {
    let id = pkid.to_be_bytes();
    [0x40, 2, id[0], id[1]]
}

/// The reading side: frames parsed out of one growing buffer.
pub struct Reader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    /// The next packet; `Ok(None)` when the broker closed the connection.
    pub async fn next(&mut self) -> io::Result<Option<Packet>> {
        loop {
            if let Some((header, body_at, end)) = self.frame()? {
                let body = &self.buf[body_at..end];
                let packet = parse(header, body)?;
                self.start = end;
                return Ok(Some(packet));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let len = self.buf.len();
            self.buf.resize(len.max(4096) * 2, 0);
            let n = self.read.read(&mut self.buf[len..]).await?;
            self.buf.truncate(len + n);
            if n == 0 {
                return Ok(None);
            }
        }
    }

    /// (first byte, body start, frame end) of a complete frame at `start`.
    fn frame(&self) -> io::Result<Option<(u8, usize, usize)>> {
        let b = &self.buf[self.start..];
        let Some(&header) = b.first() else {
            return Ok(None);
        };
        let mut len = 0usize;
        for i in 0..4 {
            let Some(&byte) = b.get(1 + i) else {
                return Ok(None);
            };
            len |= usize::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                if len > MAX_FRAME {
                    return Err(io::Error::other("MQTT frame over MAX_FRAME"));
                }
                let body_at = 2 + i;
                if b.len() < body_at + len {
                    return Ok(None);
                }
                return Ok(Some((
                    header,
                    self.start + body_at,
                    self.start + body_at + len,
                )));
            }
        }
        Err(io::Error::other("bad MQTT remaining length"))
    }
}

fn parse(header: u8, body: &[u8]) -> io::Result<Packet> {
    let short = || io::Error::other("short MQTT packet");
    Ok(match header >> 4 {
        2 => Packet::ConnAck {
            code: *body.get(1).ok_or_else(short)?,
        },
        3 => {
            let qos = (header >> 1) & 3;
            let tlen = usize::from(u16::from_be_bytes([
                *body.first().ok_or_else(short)?,
                *body.get(1).ok_or_else(short)?,
            ]));
            let mut at = 2 + tlen;
            let mut pkid = 0;
            if qos > 0 {
                pkid = u16::from_be_bytes([
                    *body.get(at).ok_or_else(short)?,
                    *body.get(at + 1).ok_or_else(short)?,
                ]);
                at += 2;
            }
            let payload = body.get(at..).ok_or_else(short)?.to_vec();
            Packet::Publish { qos, pkid, payload }
        }
        4 => Packet::PubAck {
            pkid: u16::from_be_bytes([
                *body.first().ok_or_else(short)?,
                *body.get(1).ok_or_else(short)?,
            ]),
        },
        9 => Packet::SubAck,
        _ => Packet::Other,
    })
}

/// A connected client: the buffered writer and the reader.
pub struct Client {
    pub write: BufWriter<OwnedWriteHalf>,
    pub read: Reader,
}

impl Client {
    /// Connects and waits for a successful CONNACK.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        user: Option<(&str, &str)>,
    ) -> io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut client = Client {
            write: BufWriter::with_capacity(64 << 10, write),
            read: Reader {
                read,
                buf: Vec::new(),
                start: 0,
            },
        };
        client
            .write
            .write_all(&connect_frame(client_id, user))
            .await?;
        client.write.flush().await?;
        match client.read.next().await? {
            Some(Packet::ConnAck { code: 0 }) => Ok(client),
            Some(Packet::ConnAck { code }) => Err(io::Error::other(format!(
                "CONNACK refused the connection (code {code})"
            ))),
            _ => Err(io::Error::other("no CONNACK")),
        }
    }

    /// Subscribes to `filter` and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: u8) -> io::Result<()> {
        self.write.write_all(&subscribe_frame(filter, qos)).await?;
        self.write.flush().await?;
        loop {
            match self.read.next().await? {
                Some(Packet::SubAck) => return Ok(()),
                Some(_) => {}
                None => return Err(io::Error::other("closed before SUBACK")),
            }
        }
    }

    /// Publishes at QoS 1 and waits for its PUBACK (what "acknowledged"
    /// means for a command); other packets in between are skipped.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payload: &[u8],
        pkid: u16,
    ) -> io::Result<()> {
        let mut frame = Vec::new();
        publish_frame(topic, payload, 1, pkid, &mut frame);
        self.write.write_all(&frame).await?;
        self.write.flush().await?;
        loop {
            match self.read.next().await? {
                Some(Packet::PubAck { pkid: got }) if got == pkid => return Ok(()),
                Some(_) => {}
                None => return Err(io::Error::other("closed before PUBACK")),
            }
        }
    }
}

/// Answers a QoS 1 PUBLISH on the subscriber side.
pub async fn puback(write: &mut BufWriter<OwnedWriteHalf>, pkid: u16) -> io::Result<()> {
    write.write_all(&puback_frame(pkid)).await
}
