//! The TLS layer of a transport: a rustls server session driven through its buffer API
//! (`read_tls`, `process_new_packets`, `reader`; `writer`, `write_tls`), no socket of its own.

use super::{FailKind, Failed, Input};
use bytes::{BufMut, BytesMut};
use std::io::{Read, Write};
use std::sync::Arc;

/// Plaintext read from the session per step.
const READ_CHUNK: usize = 16 * 1024;

pub struct TlsSession {
    conn: rustls::ServerConnection,
}

impl TlsSession {
    pub fn new(config: &Arc<rustls::ServerConfig>) -> Result<TlsSession, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(config.clone())?;
        // The shard hands a connection more output only once the last went out, so the
        // session needs no limit of its own (with one, a large write would be cut short).
        conn.set_buffer_limit(None);
        Ok(TlsSession { conn })
    }

    /// The handshake has not ended yet.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The client's certificate (DER), once the handshake verified it.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.conn.peer_certificates()?.first().map(|c| c.as_ref())
    }

    /// Records in: their plaintext is appended to `plain`, handshake answers to `wire`.
    pub fn input(
        &mut self,
        mut records: &[u8],
        plain: &mut BytesMut,
        wire: &mut BytesMut,
    ) -> Result<Input, Failed> {
        let mut state = Input::Open;
        while !records.is_empty() {
            match self.conn.read_tls(&mut records) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(self.failed(e.to_string(), wire)),
            }
            let io = match self.conn.process_new_packets() {
                Ok(io) => io,
                Err(e) => return Err(self.failed(e.to_string(), wire)),
            };
            if io.peer_has_closed() {
                state = Input::Closed;
            }
            if io.plaintext_bytes_to_read() > 0 {
                self.read_plain(plain);
            }
        }
        self.drain(wire);
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

    /// Plaintext in, records out to `wire` (held back until the handshake is done).
    pub fn write(&mut self, bytes: &[u8], wire: &mut BytesMut) {
        // Without a buffer limit the writer takes everything: it cannot fail.
        let _ = self.conn.writer().write_all(bytes);
        self.drain(wire);
    }

    /// The close_notify alert, out to `wire`.
    pub fn close(&mut self, wire: &mut BytesMut) {
        self.conn.send_close_notify();
        self.drain(wire);
    }

    /// Moves every record the session has ready into `wire`.
    fn drain(&mut self, wire: &mut BytesMut) {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut wire.writer()).is_err() {
                return;
            }
        }
    }

    /// The session failed: the alert it queued (if any) goes out before the close.
    fn failed(&mut self, reason: String, wire: &mut BytesMut) -> Failed {
        self.drain(wire);
        Failed {
            kind: FailKind::Tls,
            reason: format!("TLS: {reason}"),
            alert: std::mem::take(wire),
        }
    }
}
