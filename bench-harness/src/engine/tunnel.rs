//! What carries a harness connection's MQTT bytes besides plain TCP: TLS (rustls client),
//! WebSocket (tungstenite client over an in-memory pipe), or WebSocket inside TLS. Sans-IO
//! like the rest of a connection: wire bytes in, MQTT bytes out (`input`); MQTT bytes in,
//! wire bytes out (`seal`, then `out`). The loop in `net.rs` owns the socket.
//!
//! MQTT written before the TLS handshake ends waits in rustls; written before the
//! WebSocket upgrade is answered, it waits here and goes out framed once it is.

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::{Message, WebSocket, WebSocketConfig};

/// How a run's connections are carried (part of the run spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSpec {
    /// TLS: the name to ask for (SNI) and check, and the CA file to verify the broker with
    /// (none: the broker's certificate is not verified).
    pub tls: Option<TlsSpec>,
    /// WebSocket: the upgrade path.
    pub ws_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSpec {
    pub server_name: String,
    pub cafile: Option<PathBuf>,
}

impl TunnelSpec {
    pub fn is_plain(&self) -> bool {
        self.tls.is_none() && self.ws_path.is_none()
    }

    /// The rustls settings every TLS connection of a worker shares.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>> {
        let Some(t) = &self.tls else { return Ok(None) };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let mut config = match &t.cafile {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("--cafile {}", path.display()))?
                {
                    roots.add(c.with_context(|| format!("--cafile {}", path.display()))?)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"mqtt".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// One connection's layers and the wire bytes waiting for the socket.
pub struct Tunnel {
    tls: Option<ClientConnection>,
    ws: Option<Ws>,
    out: BytesMut,
}

enum Ws {
    Upgrading {
        mid: Option<MidHandshake<ClientHandshake<Pipe>>>,
        /// MQTT bytes written before the upgrade was answered.
        early: BytesMut,
    },
    Open(WebSocket<Pipe>),
}

/// The in-memory stream tungstenite reads from and writes to.
#[derive(Default)]
struct Pipe {
    input: BytesMut,
    output: BytesMut,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.input.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
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

impl Tunnel {
    /// A tunnel for a new connection to `host` (the `Host` of a WebSocket upgrade); its
    /// first wire bytes (ClientHello, upgrade request) are in `out` already.
    pub fn new(
        spec: &TunnelSpec,
        config: Option<&Arc<ClientConfig>>,
        host: std::net::SocketAddr,
    ) -> Result<Tunnel> {
        let tls = match (&spec.tls, config) {
            (Some(t), Some(c)) => {
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|e| anyhow!("--server-name {}: {e}", t.server_name))?;
                Some(ClientConnection::new(c.clone(), name)?)
            }
            _ => None,
        };
        let ws = match &spec.ws_path {
            Some(path) => {
                let scheme = if tls.is_some() { "wss" } else { "ws" };
                let mut req = format!("{scheme}://{host}{path}").into_client_request()?;
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "mqtt".parse()?);
                let config = WebSocketConfig::default();
                let mid = match ClientHandshake::start(Pipe::default(), req, Some(config)) {
                    Ok(mid) => mid,
                    Err(e) => bail!("WebSocket upgrade: {e}"),
                };
                Some(Ws::Upgrading {
                    mid: Some(mid),
                    early: BytesMut::new(),
                })
            }
            None => None,
        };
        let mut t = Tunnel {
            tls,
            ws,
            out: BytesMut::new(),
        };
        t.step_ws(&[], &mut BytesMut::new())?;
        t.pump_tls()?;
        Ok(t)
    }

    /// Wire bytes from the socket: the MQTT bytes they carry are appended to `mqtt`; any
    /// answer waits in `out`.
    pub fn input(&mut self, wire: &[u8], mqtt: &mut BytesMut) -> Result<()> {
        let mut inner = BytesMut::new();
        let bytes = match &mut self.tls {
            Some(tls) => {
                let mut rd = wire;
                while !rd.is_empty() {
                    tls.read_tls(&mut rd)?;
                    tls.process_new_packets()?;
                    let mut chunk = [0u8; 16 * 1024];
                    loop {
                        match tls.reader().read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => inner.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                &inner[..]
            }
            None => wire,
        };
        if self.ws.is_some() {
            let bytes = bytes.to_vec();
            self.step_ws(&bytes, mqtt)?;
        } else {
            mqtt.extend_from_slice(bytes);
        }
        self.pump_tls()
    }

    /// MQTT bytes out through every layer into `out`.
    pub fn seal(&mut self, mqtt: &[u8]) -> Result<()> {
        match &mut self.ws {
            Some(Ws::Upgrading { early, .. }) => {
                early.extend_from_slice(mqtt);
                return Ok(());
            }
            Some(Ws::Open(ws)) => {
                ws.write(Message::Binary(bytes::Bytes::copy_from_slice(mqtt)))?;
                ws.flush()?;
                let framed = std::mem::take(&mut ws.get_mut().output);
                self.framed_out(&framed)?;
            }
            None => self.framed_out(mqtt)?,
        }
        self.pump_tls()
    }

    /// The wire bytes waiting for the socket.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Bytes after WebSocket framing: into TLS, or straight out.
    fn framed_out(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.tls {
            Some(tls) => tls.writer().write_all(bytes)?,
            None => self.out.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Drives the WebSocket layer with bytes from below: the upgrade, then messages.
    fn step_ws(&mut self, bytes: &[u8], mqtt: &mut BytesMut) -> Result<()> {
        let Some(ws) = self.ws.take() else {
            return Ok(());
        };
        let next = match ws {
            Ws::Upgrading { mid, early } => {
                let mut mid = mid.ok_or_else(|| anyhow!("WebSocket upgrade lost"))?;
                mid.get_mut().get_mut().input.extend_from_slice(bytes);
                match mid.handshake() {
                    Ok((mut ws, _response)) => {
                        let sent = std::mem::take(&mut ws.get_mut().output);
                        self.framed_out(&sent)?;
                        self.ws = Some(Ws::Open(ws));
                        if !early.is_empty() {
                            self.seal(&early)?;
                        }
                        // Bytes after the upgrade answer are messages already.
                        return self.read_messages(mqtt);
                    }
                    Err(HandshakeError::Interrupted(mut mid)) => {
                        let sent = std::mem::take(&mut mid.get_mut().get_mut().output);
                        self.framed_out(&sent)?;
                        Ws::Upgrading {
                            mid: Some(mid),
                            early,
                        }
                    }
                    Err(HandshakeError::Failure(e)) => bail!("WebSocket upgrade refused: {e}"),
                }
            }
            Ws::Open(mut ws) => {
                ws.get_mut().input.extend_from_slice(bytes);
                self.ws = Some(Ws::Open(ws));
                return self.read_messages(mqtt);
            }
        };
        self.ws = Some(next);
        Ok(())
    }

    /// Every complete WebSocket message read: binary ones carry MQTT.
    fn read_messages(&mut self, mqtt: &mut BytesMut) -> Result<()> {
        let Some(Ws::Open(ws)) = &mut self.ws else {
            return Ok(());
        };
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => mqtt.extend_from_slice(&b),
                Ok(Message::Close(_)) => bail!("WebSocket closed by the broker"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Pongs and close answers tungstenite queued.
        let _ = ws.flush();
        let answer = std::mem::take(&mut ws.get_mut().output);
        self.framed_out(&answer)
    }

    /// Records rustls has to send, into `out`.
    fn pump_tls(&mut self) -> Result<()> {
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                let mut w = (&mut self.out).writer();
                tls.write_tls(&mut w)?;
            }
        }
        Ok(())
    }
}

/// A verifier that takes any certificate (no `--cafile`): for benchmarks against a broker
/// with a self-signed certificate. Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
