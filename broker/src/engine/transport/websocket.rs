//! The WebSocket layer of a transport: tungstenite's handshake and framing over an in-memory
//! pipe (bytes in, bytes out; never a socket). The upgrade must ask for the path of the
//! listener and the subprotocol `mqtt` (or the old `mqttv3.1`); MQTT rides in binary
//! messages, however the client splits or joins its packets across them; pings are answered
//! and a close is echoed.

use super::{FailKind, Failed, Input};
use bytes::{Buf, BytesMut};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// What a WebSocket listener asks of an upgrade, shared by its connections.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// The request path, e.g. `/mqtt`.
    pub path: String,
    /// Largest WebSocket message or frame accepted (bounded by the MQTT packet limit).
    pub max_message: usize,
}

/// Subprotocols an MQTT client may ask for, in the order they are preferred.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// tungstenite's read buffer per connection (its default, 128 KiB, is far too much to hold
/// for each of many connections; 4 KiB made an idle WebSocket connection cost 7.2 KB, 1 KiB
/// 4.1 KB, with no loss of p2p throughput measured).
const READ_BUFFER: usize = 1024;

/// Bytes in and out of the WebSocket machinery.
#[derive(Default)]
struct Pipe {
    input: BytesMut,
    output: BytesMut,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.input.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        if self.input.is_empty() {
            // An idle connection holds no input buffer.
            self.input = BytesMut::new();
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks the upgrade request and picks the subprotocol.
struct Check(Arc<WsSettings>);

impl Callback for Check {
    fn on_request(self, req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode, why: String| {
            let mut r = ErrorResponse::new(Some(why));
            *r.status_mut() = status;
            r
        };
        if req.uri().path() != self.0.path {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("MQTT is served at {}\n", self.0.path),
            ));
        }
        let asked: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(str::trim))
            .collect();
        let Some(proto) = SUBPROTOCOLS.iter().find(|p| asked.contains(p)) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "the WebSocket subprotocol must be mqtt (Sec-WebSocket-Protocol: mqtt)\n".into(),
            ));
        };
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(proto));
        Ok(resp)
    }
}

type Handshake = MidHandshake<tungstenite::handshake::server::ServerHandshake<Pipe, Check>>;

enum State {
    Upgrading(Handshake),
    Open(WebSocket<Pipe>),
    /// Between states, or after a failure.
    Gone,
}

pub struct WsSession {
    state: State,
}

fn failed(reason: String, reply: BytesMut) -> Failed {
    Failed {
        kind: FailKind::WebSocket,
        reason: format!("WebSocket: {reason}"),
        alert: reply,
    }
}

impl WsSession {
    pub fn new(settings: &Arc<WsSettings>) -> WsSession {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(settings.max_message))
            .max_frame_size(Some(settings.max_message));
        let state = match tungstenite::accept_hdr_with_config(
            Pipe::default(),
            Check(settings.clone()),
            Some(config),
        ) {
            Err(HandshakeError::Interrupted(mid)) => State::Upgrading(mid),
            // An empty pipe cannot finish or fail a handshake.
            Ok(ws) => State::Open(ws),
            Err(HandshakeError::Failure(_)) => State::Gone,
        };
        WsSession { state }
    }

    /// Bytes in: the MQTT bytes of binary messages are appended to `mqtt`; the upgrade
    /// answer, pongs and close replies to `out`.
    pub fn input(
        &mut self,
        bytes: &[u8],
        mqtt: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Input, Failed> {
        if let State::Upgrading(mid) = &mut self.state {
            mid.get_mut().get_mut().input.extend_from_slice(bytes);
            let State::Upgrading(mid) = std::mem::replace(&mut self.state, State::Gone) else {
                unreachable!()
            };
            match mid.handshake() {
                Ok(mut ws) => {
                    out.extend_from_slice(&std::mem::take(&mut ws.get_mut().output));
                    self.state = State::Open(ws);
                }
                Err(HandshakeError::Interrupted(mut mid)) => {
                    out.extend_from_slice(&std::mem::take(&mut mid.get_mut().get_mut().output));
                    self.state = State::Upgrading(mid);
                    return Ok(Input::Open);
                }
                Err(HandshakeError::Failure(e)) => {
                    // The error reply went into the pipe, which the failure dropped; say why
                    // in the log, and close.
                    return Err(failed(format!("upgrade refused: {e}"), refusal(&e)));
                }
            }
        } else if let State::Open(ws) = &mut self.state {
            ws.get_mut().input.extend_from_slice(bytes);
        }
        let State::Open(ws) = &mut self.state else {
            return Ok(Input::Closed);
        };
        let mut state = Input::Open;
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => mqtt.extend_from_slice(&b),
                Ok(Message::Text(_)) => {
                    let _ = ws.close(Some(CloseFrame {
                        code: CloseCode::Unsupported,
                        reason: "MQTT goes in binary messages".into(),
                    }));
                    let _ = ws.flush();
                    let reply = std::mem::take(&mut ws.get_mut().output);
                    return Err(failed("a text message (MQTT goes in binary)".into(), reply));
                }
                Ok(Message::Close(_)) => state = Input::Closed,
                Ok(_) => {} // pings are answered by tungstenite itself
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    state = Input::Closed;
                    break;
                }
                Err(e) => {
                    let _ = ws.flush();
                    let reply = std::mem::take(&mut ws.get_mut().output);
                    return Err(failed(e.to_string(), reply));
                }
            }
        }
        let _ = ws.flush();
        out.extend_from_slice(&std::mem::take(&mut ws.get_mut().output));
        Ok(state)
    }

    /// MQTT bytes out as one binary message.
    pub fn frame(&mut self, mqtt: BytesMut, out: &mut BytesMut) {
        if let State::Open(ws) = &mut self.state {
            let _ = ws.write(Message::Binary(mqtt.freeze()));
            let _ = ws.flush();
            out.extend_from_slice(&std::mem::take(&mut ws.get_mut().output));
        }
    }

    /// A close frame (1000, normal closure), out to `out`.
    pub fn close(&mut self, out: &mut BytesMut) {
        if let State::Open(ws) = &mut self.state {
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }));
            let _ = ws.flush();
            out.extend_from_slice(&std::mem::take(&mut ws.get_mut().output));
        }
    }
}

/// The HTTP answer to a refused upgrade.
fn refusal(e: &tungstenite::Error) -> BytesMut {
    let (status, body) = match e {
        tungstenite::Error::Http(resp) => (
            resp.status(),
            resp.body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        ),
        _ => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let text = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    BytesMut::from(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(path: &str) -> WsSession {
        WsSession::new(&Arc::new(WsSettings {
            path: path.into(),
            max_message: 1 << 20,
        }))
    }

    fn upgrade(path: &str, protocol: Option<&str>) -> Vec<u8> {
        let proto = protocol.map_or(String::new(), |p| {
            format!("Sec-WebSocket-Protocol: {p}\r\n")
        });
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{proto}\r\n"
        )
        .into_bytes()
    }

    /// A masked client frame (FIN set) of `opcode` carrying `payload` (< 126 bytes).
    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut f = vec![
            (if fin { 0x80 } else { 0 }) | opcode,
            0x80 | payload.len() as u8,
        ];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn open(s: &mut WsSession) -> String {
        let (mut mqtt, mut out) = (BytesMut::new(), BytesMut::new());
        assert_eq!(
            s.input(
                &upgrade("/mqtt", Some("mqttv3.1, mqtt")),
                &mut mqtt,
                &mut out
            )
            .unwrap(),
            Input::Open
        );
        assert!(mqtt.is_empty());
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn an_upgrade_asking_for_mqtt_is_accepted_with_that_subprotocol() {
        let reply = open(&mut session("/mqtt"));
        assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
        assert!(
            reply
                .to_ascii_lowercase()
                .contains("sec-websocket-protocol: mqtt\r\n"),
            "{reply}"
        );
    }

    #[test]
    fn an_upgrade_split_across_reads_completes() {
        let mut s = session("/mqtt");
        let req = upgrade("/mqtt", Some("mqtt"));
        let (mut mqtt, mut out) = (BytesMut::new(), BytesMut::new());
        s.input(&req[..20], &mut mqtt, &mut out).unwrap();
        assert!(out.is_empty());
        s.input(&req[20..], &mut mqtt, &mut out).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 101"));
    }

    #[test]
    fn upgrades_without_the_subprotocol_or_on_another_path_are_refused_with_http() {
        for (path, proto, status) in [
            ("/mqtt", None, "400"),
            ("/mqtt", Some("chat"), "400"),
            ("/other", Some("mqtt"), "404"),
        ] {
            let mut s = session("/mqtt");
            let (mut mqtt, mut out) = (BytesMut::new(), BytesMut::new());
            let f = s
                .input(&upgrade(path, proto), &mut mqtt, &mut out)
                .unwrap_err();
            let reply = String::from_utf8(f.alert.to_vec()).unwrap();
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
            assert!(f.reason.starts_with("WebSocket: "), "{}", f.reason);
        }
        let f = session("/mqtt")
            .input(
                b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\r\n\r\n",
                &mut BytesMut::new(),
                &mut BytesMut::new(),
            )
            .unwrap_err();
        assert!(f.alert.starts_with(b"HTTP/1.1 400"));
    }

    #[test]
    fn packets_split_across_messages_and_joined_in_one_come_out_as_one_stream() {
        let mut s = session("/mqtt");
        open(&mut s);
        let (mut mqtt, mut out) = (BytesMut::new(), BytesMut::new());
        let two = b"\xc0\x00\xc0\x00"; // two PINGREQs in one message
        s.input(&frame(2, true, two), &mut mqtt, &mut out).unwrap();
        assert_eq!(&mqtt[..], two);
        // One packet in a fragmented message (binary, then continuation), and one split
        // over two messages.
        let mut wire = frame(2, false, b"\x30\x03");
        wire.extend(frame(0, true, b"\x00\x01a"));
        wire.extend(frame(2, true, b"\xc0"));
        s.input(&wire, &mut mqtt, &mut out).unwrap();
        s.input(&frame(2, true, b"\x00"), &mut mqtt, &mut out)
            .unwrap();
        assert_eq!(&mqtt[4..], b"\x30\x03\x00\x01a\xc0\x00");
        assert!(out.is_empty());
    }

    #[test]
    fn a_ping_is_answered_and_a_close_echoed() {
        let mut s = session("/mqtt");
        open(&mut s);
        let (mut mqtt, mut out) = (BytesMut::new(), BytesMut::new());
        assert_eq!(
            s.input(&frame(9, true, b"hi"), &mut mqtt, &mut out)
                .unwrap(),
            Input::Open
        );
        assert_eq!(&out[..], b"\x8a\x02hi", "a pong with the ping's payload");
        out.clear();
        assert_eq!(
            s.input(&frame(8, true, b"\x03\xe8"), &mut mqtt, &mut out)
                .unwrap(),
            Input::Closed
        );
        assert_eq!(out.first(), Some(&0x88), "a close frame back");
    }

    #[test]
    fn output_goes_in_binary_messages_and_a_close_ends_them() {
        let mut s = session("/mqtt");
        open(&mut s);
        let mut out = BytesMut::new();
        s.frame(BytesMut::from(&b"\x20\x02\x00\x00"[..]), &mut out);
        assert_eq!(&out[..], b"\x82\x04\x20\x02\x00\x00");
        out.clear();
        s.close(&mut out);
        assert_eq!(&out[..], b"\x88\x02\x03\xe8");
    }

    #[test]
    fn a_text_message_fails_the_session_with_a_close() {
        let mut s = session("/mqtt");
        open(&mut s);
        let f = s
            .input(
                &frame(1, true, b"hello"),
                &mut BytesMut::new(),
                &mut BytesMut::new(),
            )
            .unwrap_err();
        assert_eq!(f.alert.first(), Some(&0x88));
        assert_eq!(&f.alert[2..4], &1003u16.to_be_bytes());
    }
}
