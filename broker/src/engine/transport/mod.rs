//! The transport seam: between a connection's socket and the MQTT codec sits a sans-IO
//! transport. Wire bytes go in and MQTT bytes come out (`input`); MQTT output goes in and
//! wire bytes come out (`seal`). Plain TCP passes bytes straight through, with no copy and
//! no allocation, and costs the connection 8 bytes. Other transports stack layers: TLS
//! (rustls, `tls_session`) under WebSocket framing (tungstenite, `websocket`), either or both.
//!
//! Wire bytes the transport produced and the socket has not taken yet (a handshake answer,
//! a pong, the rest of a partial send) wait in the transport and go before any new output;
//! a hand-off moves the transport, with them, to the home shard.

mod cert_name;
mod proxy;
mod tls_session;
mod websocket;

pub use cert_name::CertName;
pub use websocket::WsSettings;

use bytes::BytesMut;
use shard::Output;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use tls_session::TlsSession;
use websocket::WsSession;

/// How one connection's bytes are carried.
pub enum Transport {
    Plain,
    Layered(Box<Layers>),
}

/// A PROXY header awaited, TLS, WebSocket or both (WebSocket inside TLS), and the wire
/// bytes not sent yet.
pub struct Layers {
    /// The bytes of a PROXY header read so far, while it is awaited (`proxy`).
    proxy: Option<BytesMut>,
    /// The client a PROXY header named, until the connection takes it.
    client: Option<SocketAddr>,
    tls: Option<TlsSession>,
    /// Wire bytes of a TLS handshake put off to a later poller pass (`defer`).
    deferred: BytesMut,
    /// The client certificate's name replaces the CONNECT's username.
    cert_username: Option<CertName>,
    ws: Option<WsSession>,
    pending: BytesMut,
}

/// The TLS settings of a listener: each new connection takes the current ones, and a
/// reload (SIGHUP) swaps them without a lock; sessions under way keep theirs.
pub type TlsSettings = Arc<arc_swap::ArcSwap<rustls::ServerConfig>>;

/// What a listener's connections are carried in.
#[derive(Clone, Default)]
pub struct Kind {
    pub tls: Option<TlsSettings>,
    pub ws: Option<Arc<WsSettings>>,
    /// Connections start with a PROXY protocol header, required.
    pub proxy: bool,
    /// TLS with client certificates: this name of the certificate is the username.
    pub cert_username: Option<CertName>,
}

/// What `input` found besides MQTT bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Open,
    /// The peer ended the session (TLS close_notify, WebSocket close): no more input comes.
    Closed,
}

/// A transport failure: the session cannot go on. `alert` is what to send before closing
/// (a TLS alert, an HTTP refusal, a WebSocket close), already sealed.
#[derive(Debug)]
pub struct Failed {
    pub kind: FailKind,
    pub reason: String,
    pub alert: BytesMut,
}

impl Transport {
    /// A transport for a new connection of a listener of `kind`.
    pub fn new(kind: &Kind) -> Result<Transport, rustls::Error> {
        if kind.tls.is_none() && kind.ws.is_none() && !kind.proxy {
            return Ok(Transport::Plain);
        }
        let tls = kind
            .tls
            .as_ref()
            .map(|t| TlsSession::new(&t.load_full()))
            .transpose()?;
        Ok(Transport::Layered(Box::new(Layers {
            proxy: kind.proxy.then(BytesMut::new),
            client: None,
            tls,
            deferred: BytesMut::new(),
            cert_username: kind.cert_username,
            ws: kind.ws.as_ref().map(WsSession::new),
            pending: BytesMut::new(),
        })))
    }

    /// Wire bytes arrived: the MQTT bytes they carry are appended to `plain`; answers wait
    /// in the transport (`has_pending`).
    pub fn input(&mut self, wire: &[u8], plain: &mut BytesMut) -> Result<Input, Failed> {
        match self {
            Transport::Plain => {
                plain.extend_from_slice(wire);
                Ok(Input::Open)
            }
            Transport::Layered(l) => l.input(wire, plain),
        }
    }

    /// Wire bytes wait to be sent.
    pub fn has_pending(&self) -> bool {
        match self {
            Transport::Plain => false,
            Transport::Layered(l) => !l.pending.is_empty(),
        }
    }

    /// Takes the wire bytes that wait (empty for plain TCP).
    pub fn take_pending(&mut self) -> BytesMut {
        match self {
            Transport::Plain => BytesMut::new(),
            Transport::Layered(l) => std::mem::take(&mut l.pending),
        }
    }

    /// A send did not take `rest`: it goes out first, before anything produced meanwhile.
    pub fn unsent(&mut self, mut rest: BytesMut) {
        if let Transport::Layered(l) = self {
            rest.extend_from_slice(&l.pending);
            l.pending = rest;
        }
    }

    /// The client a PROXY header named, once, when it has been read. A plain TCP
    /// connection behind a proxy becomes `Plain` then: no layer is left.
    pub fn take_client(&mut self) -> Option<SocketAddr> {
        let Transport::Layered(l) = self else {
            return None;
        };
        let client = l.client.take();
        if l.proxy.is_none() && l.tls.is_none() && l.ws.is_none() && l.pending.is_empty() {
            // Nothing is deferred either: only TLS defers.
            *self = Transport::Plain;
        }
        client
    }

    /// A TLS handshake is under way: its next step costs the executor real CPU time (key
    /// exchange, signature), so the poller spends a bounded number of them per pass.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Transport::Layered(l) if l.tls.as_ref().is_some_and(|t| t.is_handshaking()))
    }

    /// Wire bytes wait for a later pass (`defer`); later bytes must queue behind them.
    pub fn has_deferred(&self) -> bool {
        matches!(self, Transport::Layered(l) if !l.deferred.is_empty())
    }

    /// Keeps wire bytes of a handshake for a later pass, in order.
    pub fn defer(&mut self, wire: &[u8]) {
        if let Transport::Layered(l) = self {
            l.deferred.extend_from_slice(wire);
        }
    }

    /// The wire bytes put off, to be given to `input` now.
    pub fn take_deferred(&mut self) -> BytesMut {
        match self {
            Transport::Plain => BytesMut::new(),
            Transport::Layered(l) => std::mem::take(&mut l.deferred),
        }
    }

    /// The username the client certificate gives, on a listener that takes it from there
    /// (`None` elsewhere), or why it gives none.
    pub fn cert_username(&self) -> Option<Result<String, String>> {
        let Transport::Layered(l) = self else {
            return None;
        };
        let which = l.cert_username?;
        Some(match l.tls.as_ref().and_then(|t| t.peer_certificate()) {
            Some(der) => cert_name::username(der, which),
            None => Err("no client certificate to take the username from".into()),
        })
    }

    /// True when MQTT output goes to the socket as it is (plain TCP).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain)
    }

    /// Wraps MQTT output for the wire, after the bytes that wait.
    pub fn seal(&mut self, out: &Output, wire: &mut BytesMut) {
        let mut mqtt = BytesMut::with_capacity(out.len());
        for s in out.slices() {
            mqtt.extend_from_slice(s);
        }
        match self {
            Transport::Plain => wire.extend_from_slice(&mqtt),
            Transport::Layered(l) => {
                l.seal(mqtt);
                wire.extend_from_slice(&l.pending);
                l.pending.clear();
            }
        }
    }

    /// The last wire bytes of a closing connection: what waits, `last` sealed, and the
    /// closes of the layers (WebSocket close, TLS close_notify).
    pub fn close(&mut self, last: BytesMut) -> BytesMut {
        match self {
            Transport::Plain => last,
            Transport::Layered(l) => {
                if !last.is_empty() {
                    l.seal(last);
                }
                let mut ws_close = BytesMut::new();
                if let Some(ws) = &mut l.ws {
                    ws.close(&mut ws_close);
                }
                l.seal_framed(ws_close);
                if let Some(tls) = &mut l.tls {
                    tls.close(&mut l.pending);
                }
                std::mem::take(&mut l.pending)
            }
        }
    }
}

impl Layers {
    /// Reads the PROXY header first, if awaited, then passes the rest on.
    fn input(&mut self, wire: &[u8], plain: &mut BytesMut) -> Result<Input, Failed> {
        let Some(head) = &mut self.proxy else {
            return self.input_layers(wire, plain);
        };
        head.extend_from_slice(wire);
        match proxy::parse(head) {
            Err(reason) => Err(Failed {
                kind: FailKind::Proxy,
                reason,
                alert: BytesMut::new(),
            }),
            Ok(None) => Ok(Input::Open),
            Ok(Some(h)) => {
                let rest = head.split_off(h.len);
                self.proxy = None;
                self.client = h.client;
                if rest.is_empty() {
                    Ok(Input::Open)
                } else {
                    self.input_layers(&rest, plain)
                }
            }
        }
    }

    fn input_layers(&mut self, wire: &[u8], plain: &mut BytesMut) -> Result<Input, Failed> {
        let mut state = Input::Open;
        let mut inner = BytesMut::new();
        let bytes = match &mut self.tls {
            Some(tls) => {
                let mut answer = BytesMut::new();
                let target = if self.ws.is_some() {
                    &mut inner
                } else {
                    &mut *plain
                };
                state = tls.input(wire, target, &mut answer)?;
                self.pending.extend_from_slice(&answer);
                if self.ws.is_none() {
                    return Ok(state);
                }
                &inner[..]
            }
            None => wire,
        };
        let Some(ws) = &mut self.ws else {
            plain.extend_from_slice(bytes);
            return Ok(state);
        };
        let mut answer = BytesMut::new();
        let ws_state = match ws.input(bytes, plain, &mut answer) {
            Ok(s) => s,
            Err(mut f) => {
                // The refusal or close goes out sealed like any other bytes.
                let reply = std::mem::take(&mut f.alert);
                self.seal_framed(reply);
                f.alert = std::mem::take(&mut self.pending);
                return Err(f);
            }
        };
        self.seal_framed(answer);
        Ok(if ws_state == Input::Closed {
            Input::Closed
        } else {
            state
        })
    }

    /// MQTT bytes out through every layer into `pending`.
    fn seal(&mut self, mqtt: BytesMut) {
        let mut framed = BytesMut::new();
        match &mut self.ws {
            Some(ws) => ws.frame(mqtt, &mut framed),
            None => framed = mqtt,
        }
        self.seal_framed(framed);
    }

    /// Bytes already framed (or needing no framing) out through TLS, if any, into `pending`.
    fn seal_framed(&mut self, bytes: BytesMut) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.tls {
            Some(tls) => tls.write(&bytes, &mut self.pending),
            None => self.pending.extend_from_slice(&bytes),
        }
    }
}

/// True when `first` bytes of a connection are a TLS handshake record (0x16, version 3.x):
/// no MQTT packet starts so (0x16 is a CONNECT with reserved flags set, which is malformed).
pub fn is_tls_hello(first: &[u8]) -> bool {
    first.len() >= 2 && first[0] == 0x16 && first[1] == 0x03
}

/// Least time between two log lines about failed sessions.
const LOG_EVERY_MS: u64 = 10_000;

/// Why a connection's transport failed; each kind has its own log window.
#[derive(Debug, Clone, Copy)]
pub enum FailKind {
    /// A TLS session failed: a bad handshake, a refused certificate, a corrupt record.
    Tls = 0,
    /// A TLS ClientHello came to a plain MQTT listener.
    HelloOnPlainPort = 1,
    /// A WebSocket upgrade was refused (path, subprotocol) or a frame was bad.
    WebSocket = 2,
    /// A listener that requires a PROXY protocol header got none, or a bad one.
    Proxy = 3,
}

/// How many `FailKind`s there are.
pub const FAIL_KINDS: usize = 4;

/// Connections whose transport failed: every one counted; the log gets the first of each
/// kind and then at most one line per kind and `LOG_EVERY_MS`.
#[derive(Default)]
pub struct Failures {
    by_kind: [Cell<u64>; FAIL_KINDS],
    logged_at: [Cell<Option<u64>>; FAIL_KINDS],
    logged_count: [Cell<u64>; FAIL_KINDS],
}

impl Failures {
    /// Closes counted so far, by `FailKind`.
    pub fn by_kind(&self) -> [u64; FAIL_KINDS] {
        std::array::from_fn(|k| self.by_kind[k].get())
    }

    pub fn failed(&self, now_ms: u64, shard: u16, kind: FailKind, reason: &str) {
        let k = kind as usize;
        self.by_kind[k].set(self.by_kind[k].get() + 1);
        if self.logged_at[k]
            .get()
            .is_some_and(|t| now_ms < t + LOG_EVERY_MS)
        {
            return;
        }
        let n = self.by_kind[k].get() - self.logged_count[k].get();
        tracing::warn!(
            shard,
            "{reason}; the connection was closed ({n} such close(s) since the last \
             line; at most one line per {} s)",
            LOG_EVERY_MS / 1000
        );
        self.logged_at[k].set(Some(now_ms));
        self.logged_count[k].set(self.by_kind[k].get());
    }
}

#[cfg(test)]
mod tests;
