//! The two ways MQTT bytes reach the broker: a plain TCP stream, or the
//! binary frames of a WebSocket (MQTT over WebSocket, subprotocol `mqtt`).
//!
//! Both are read as a byte stream into the session's buffer and written
//! one encoded batch at a time, so the session does not care which it has.
//! What a WebSocket peer sends that never becomes MQTT bytes (a frame over
//! the cap, a text frame) is returned as a [`WsGarbage`] read error, so the
//! session counts it like garbage inside the MQTT bytes.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use std::io;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Most bytes one read takes from a TCP peer.
const READ_CHUNK: usize = 16 * 1024;

/// A WebSocket peer's bytes refused before they reached the MQTT decoder
/// (inside an [`io::Error`] of kind `InvalidData`).
#[derive(Debug, thiserror::Error)]
pub enum WsGarbage {
    /// A frame or message over the cap [`accept_ws`] set.
    #[error("WebSocket message of {size} bytes over the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// MQTT over WebSocket is binary frames only.
    #[error("text frame on an MQTT WebSocket")]
    Text,
}

impl From<WsGarbage> for io::Error {
    fn from(garbage: WsGarbage) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, garbage)
    }
}

pub enum Transport {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

impl Transport {
    /// Appends what the peer sends next to `buf`; `false` once it closed.
    /// Cancel-safe: nothing is lost if the future is dropped. Room in
    /// `buf` is made only once bytes are there, so a quiet connection
    /// needs no read buffer.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        match self {
            Transport::Tcp(stream) => loop {
                stream.readable().await?;
                buf.reserve(READ_CHUNK);
                match stream.try_read_buf(buf) {
                    Ok(n) => return Ok(n > 0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            },
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(false),
                    Some(Ok(Message::Binary(bytes))) => {
                        buf.extend_from_slice(&bytes);
                        return Ok(true);
                    }
                    Some(Ok(Message::Text(_))) => return Err(WsGarbage::Text.into()),
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => continue,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong {
                        size,
                        max_size,
                    }))) => {
                        return Err(WsGarbage::TooLarge {
                            size,
                            max: max_size,
                        }
                        .into());
                    }
                    // Other protocol errors are not counted: a peer that
                    // only dropped its TCP connection is one of them.
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    pub async fn write(&mut self, bytes: Bytes) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => stream.write_all(&bytes).await,
            Transport::Ws(ws) => ws
                .send(Message::Binary(bytes))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Best-effort close: a TCP FIN or a WebSocket close frame.
    pub async fn close(&mut self) {
        match self {
            Transport::Tcp(stream) => {
                let _ = stream.shutdown().await;
            }
            Transport::Ws(ws) => {
                let _ = ws.close().await;
            }
        }
    }
}

/// Completes the WebSocket handshake on an accepted connection. Frames are
/// capped a little above `max_payload` (an MQTT packet plus its header).
pub async fn accept_ws(stream: TcpStream, max_payload: usize) -> io::Result<Transport> {
    let limit = max_payload.saturating_add(16);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, MqttSubprotocol, Some(config))
        .await
        .map_err(io::Error::other)?;
    Ok(Transport::Ws(Box::new(ws)))
}

/// Answers the `mqtt` subprotocol when the client asks for it (MQTT 3.1.1
/// §6: browsers' MQTT clients refuse a connection that does not).
struct MqttSubprotocol;

impl Callback for MqttSubprotocol {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        let wants_mqtt = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("mqtt"));
        if wants_mqtt {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        }
        Ok(response)
    }
}
