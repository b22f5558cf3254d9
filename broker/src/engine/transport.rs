//! The transport seam: between a connection's socket and the MQTT codec sits a sans-IO
//! transport. Wire bytes go in and MQTT bytes come out (`input`); MQTT output goes in and
//! wire bytes come out (`seal`). Plain TCP passes bytes straight through, with no copy and
//! no allocation, and costs the connection 8 bytes; TLS runs rustls's buffer API.
//!
//! Wire bytes the transport produced and the socket has not taken yet (a handshake flight,
//! an alert, the rest of a partial send) wait in the transport and go before any new
//! output; a hand-off moves the transport, with them, to the home shard.

use bytes::{BufMut, BytesMut};
use shard::Output;
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::Arc;

/// How one connection's bytes are carried.
pub enum Transport {
    Plain,
    Tls(Box<Tls>),
}

/// A TLS session and the wire bytes it produced that are not sent yet.
pub struct Tls {
    conn: rustls::ServerConnection,
    pending: BytesMut,
}

/// What `input` found besides MQTT bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Open,
    /// The peer ended the session (TLS close_notify): no more input will come.
    Closed,
}

/// A transport failure: the session cannot go on. `alert` is what to send before closing.
#[derive(Debug)]
pub struct Failed {
    pub kind: FailKind,
    pub reason: String,
    pub alert: BytesMut,
}

/// Plaintext read from a TLS session per step.
const READ_CHUNK: usize = 16 * 1024;

impl Transport {
    /// A server-side TLS session under `config`.
    pub fn tls(config: &Arc<rustls::ServerConfig>) -> Result<Transport, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(config.clone())?;
        // The shard hands a connection more output only once the last went out, so the
        // session needs no limit of its own (with one, a large write would be cut short).
        conn.set_buffer_limit(None);
        Ok(Transport::Tls(Box::new(Tls {
            conn,
            pending: BytesMut::new(),
        })))
    }

    /// Wire bytes arrived: the MQTT bytes they carry are appended to `plain`; handshake
    /// answers wait in the transport (`has_pending`).
    pub fn input(&mut self, wire: &[u8], plain: &mut BytesMut) -> Result<Input, Failed> {
        match self {
            Transport::Plain => {
                plain.extend_from_slice(wire);
                Ok(Input::Open)
            }
            Transport::Tls(t) => t.input(wire, plain),
        }
    }

    /// Wire bytes wait to be sent.
    pub fn has_pending(&self) -> bool {
        match self {
            Transport::Plain => false,
            Transport::Tls(t) => !t.pending.is_empty(),
        }
    }

    /// Takes the wire bytes that wait (empty for plain TCP).
    pub fn take_pending(&mut self) -> BytesMut {
        match self {
            Transport::Plain => BytesMut::new(),
            Transport::Tls(t) => std::mem::take(&mut t.pending),
        }
    }

    /// A send did not take `rest`: it goes out first, before anything produced meanwhile.
    pub fn unsent(&mut self, mut rest: BytesMut) {
        if let Transport::Tls(t) = self {
            rest.extend_from_slice(&t.pending);
            t.pending = rest;
        }
    }

    /// True when MQTT output goes to the socket as it is (plain TCP).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain)
    }

    /// Wraps MQTT output for the wire, after the bytes that wait.
    pub fn seal(&mut self, out: &Output, wire: &mut BytesMut) {
        match self {
            Transport::Plain => {
                for s in out.slices() {
                    wire.extend_from_slice(s);
                }
            }
            Transport::Tls(t) => {
                for s in out.slices() {
                    t.write(s);
                }
                wire.extend_from_slice(&t.pending);
                t.pending.clear();
            }
        }
    }

    /// The last wire bytes of a closing connection: what waits, `last` sealed, and the TLS
    /// close_notify.
    pub fn close(&mut self, last: BytesMut) -> BytesMut {
        match self {
            Transport::Plain => last,
            Transport::Tls(t) => {
                if !last.is_empty() {
                    t.write(&last);
                }
                t.conn.send_close_notify();
                t.drain();
                std::mem::take(&mut t.pending)
            }
        }
    }
}

impl Tls {
    fn input(&mut self, mut wire: &[u8], plain: &mut BytesMut) -> Result<Input, Failed> {
        let mut state = Input::Open;
        while !wire.is_empty() {
            match self.conn.read_tls(&mut wire) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(self.failed(e.to_string())),
            }
            let io = match self.conn.process_new_packets() {
                Ok(io) => io,
                Err(e) => return Err(self.failed(e.to_string())),
            };
            if io.peer_has_closed() {
                state = Input::Closed;
            }
            if io.plaintext_bytes_to_read() > 0 {
                self.read_plain(plain);
            }
        }
        self.drain();
        Ok(state)
    }

    fn read_plain(&mut self, plain: &mut BytesMut) {
        loop {
            let at = plain.len();
            plain.resize(at + READ_CHUNK, 0);
            let n = self.conn.reader().read(&mut plain[at..]).unwrap_or(0);
            plain.truncate(at + n);
            if n == 0 {
                return;
            }
        }
    }

    /// Plaintext into the session, records out to `pending`.
    fn write(&mut self, bytes: &[u8]) {
        // The writer of a server session buffers without limit until the handshake is done
        // and encrypts at once after: it cannot fail.
        let _ = self.conn.writer().write_all(bytes);
        self.drain();
    }

    /// Moves every record the session has ready into `pending`.
    fn drain(&mut self) {
        while self.conn.wants_write() {
            let mut w = (&mut self.pending).writer();
            if self.conn.write_tls(&mut w).is_err() {
                return;
            }
        }
    }

    /// The session failed: the alert it queued (if any) goes out before the close.
    fn failed(&mut self, reason: String) -> Failed {
        self.drain();
        Failed {
            kind: FailKind::Tls,
            reason: format!("TLS: {reason}"),
            alert: std::mem::take(&mut self.pending),
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
}

/// Connections whose transport failed: every one counted; the log gets the first of each
/// kind and then at most one line per kind and `LOG_EVERY_MS`.
#[derive(Default)]
pub struct Failures {
    pub count: Cell<u64>,
    by_kind: [Cell<u64>; 2],
    logged_at: [Cell<Option<u64>>; 2],
    logged_count: [Cell<u64>; 2],
}

impl Failures {
    pub fn failed(&self, now_ms: u64, shard: u16, kind: FailKind, reason: &str) {
        let k = kind as usize;
        self.count.set(self.count.get() + 1);
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
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A server config with a fresh self-signed certificate, and a client that trusts it.
    fn pair() -> (Arc<rustls::ServerConfig>, rustls::ClientConnection) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        (Arc::new(server), conn)
    }

    /// Client records to the server transport; returns the MQTT bytes it yielded.
    fn to_server(client: &mut rustls::ClientConnection, server: &mut Transport) -> BytesMut {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut plain = BytesMut::new();
        assert_eq!(server.input(&wire, &mut plain).unwrap(), Input::Open);
        plain
    }

    /// Server wire bytes to the client; returns the plaintext the client read.
    fn to_client(client: &mut rustls::ClientConnection, mut wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut out);
        }
        out
    }

    /// Runs the handshake to its end on both sides (the client's last flight included).
    fn handshake(client: &mut rustls::ClientConnection, server: &mut Transport) {
        for _ in 0..4 {
            to_server(client, server);
            let wire = server.take_pending();
            to_client(client, &wire);
            if !client.is_handshaking() {
                to_server(client, server);
                let tickets = server.take_pending();
                to_client(client, &tickets);
                return;
            }
        }
        panic!("no handshake after 4 round trips");
    }

    fn output(bytes: &[u8]) -> Output {
        Output {
            chunks: vec![bytes::Bytes::copy_from_slice(&bytes[..bytes.len() / 2])],
            tail: BytesMut::from(&bytes[bytes.len() / 2..]),
        }
    }

    #[test]
    fn plain_tcp_passes_bytes_through_and_keeps_nothing() {
        let mut t = Transport::Plain;
        let mut plain = BytesMut::new();
        assert_eq!(t.input(b"\x10\x00", &mut plain).unwrap(), Input::Open);
        assert_eq!(&plain[..], b"\x10\x00");
        let mut wire = BytesMut::new();
        t.seal(&output(b"abcd"), &mut wire);
        assert_eq!(&wire[..], b"abcd");
        t.unsent(BytesMut::from(&b"xy"[..]));
        assert!(!t.has_pending());
        assert_eq!(&t.close(BytesMut::from(&b"last"[..]))[..], b"last");
        assert_eq!(std::mem::size_of::<Transport>(), 8);
    }

    #[test]
    fn tls_carries_mqtt_both_ways_and_large_output_whole() {
        let (config, mut client) = pair();
        let mut server = Transport::tls(&config).unwrap();
        handshake(&mut client, &mut server);
        client.writer().write_all(b"\x10\x0cCONNECT...").unwrap();
        assert_eq!(
            &to_server(&mut client, &mut server)[..],
            b"\x10\x0cCONNECT..."
        );
        // Far more than one record and than rustls's default buffer limit (64 KiB).
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut wire = server.take_pending();
        server.seal(&output(&big), &mut wire);
        assert!(!server.has_pending());
        assert_eq!(to_client(&mut client, &wire), big);
    }

    #[test]
    fn bytes_a_send_did_not_take_go_before_newer_ones() {
        let (config, mut client) = pair();
        let mut server = Transport::tls(&config).unwrap();
        handshake(&mut client, &mut server);
        let mut first = BytesMut::new();
        server.seal(&output(b"first message"), &mut first);
        // The socket took 5 bytes; a second message was sealed meanwhile.
        let rest = first.split_off(5);
        let mut second = BytesMut::new();
        server.seal(&output(b"second"), &mut second);
        server.unsent(second);
        server.unsent(rest);
        let mut all = first.to_vec();
        all.extend_from_slice(&server.take_pending());
        assert_eq!(to_client(&mut client, &all), b"first messagesecond");
    }

    #[test]
    fn close_seals_the_last_bytes_and_a_close_notify() {
        let (config, mut client) = pair();
        let mut server = Transport::tls(&config).unwrap();
        handshake(&mut client, &mut server);
        let wire = server.close(BytesMut::from(&b"\xe0\x00"[..]));
        let mut w = &wire[..];
        while !w.is_empty() {
            client.read_tls(&mut w).unwrap();
        }
        let io = client.process_new_packets().unwrap();
        assert!(io.peer_has_closed());
        let mut got = Vec::new();
        client.reader().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"\xe0\x00");
    }

    #[test]
    fn plain_mqtt_on_a_tls_session_fails_with_an_alert() {
        let (config, _) = pair();
        let mut server = Transport::tls(&config).unwrap();
        let mut plain = BytesMut::new();
        let f = server
            .input(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", &mut plain)
            .unwrap_err();
        assert!(plain.is_empty());
        assert!(f.reason.starts_with("TLS: "), "{}", f.reason);
        assert_eq!(f.alert.first(), Some(&0x15), "an alert record");
    }

    #[test]
    fn a_client_hello_is_told_from_mqtt() {
        assert!(is_tls_hello(b"\x16\x03\x01\x02\x00"));
        assert!(!is_tls_hello(b"\x10\x0c\x00\x04MQTT"));
        assert!(!is_tls_hello(b"\x16"));
    }

    #[test]
    fn failures_are_all_counted_and_logged_once_per_window_and_kind() {
        let f = Failures::default();
        for i in 0..50 {
            f.failed(i, 0, FailKind::Tls, "TLS: x");
            f.failed(i, 0, FailKind::HelloOnPlainPort, "hello");
        }
        assert_eq!(f.count.get(), 100);
        assert_eq!(f.logged_count[0].get(), 1);
        assert_eq!(f.logged_count[1].get(), 1);
        f.failed(LOG_EVERY_MS + 1, 0, FailKind::Tls, "TLS: x");
        assert_eq!(f.logged_count[0].get(), 51);
        assert_eq!(f.logged_count[1].get(), 1);
    }
}
