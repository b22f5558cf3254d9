//! What each configured listener serves: its address, and for TLS (tls, wss) the rustls
//! settings loaded from its PEM files at start-up (TLS 1.2 and 1.3, ALPN `mqtt`; with a CA
//! file, client certificates required and verified against it), for WebSocket (ws, wss) the
//! upgrade path. A file that cannot be read or parsed, or a key that does not belong to the
//! certificate, stops start-up with a message naming the key; on SIGHUP (`reload_tls`) it
//! keeps the old certificate serving and says why.

use crate::config::{CertIdentity, Config, ConfigError, ListenerConfig, Problem, DEFAULT_WS_PATH};
use crate::config_schema::problem;
use crate::engine::{CertName, Listen, TransportKind, WsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::path::Path;
use std::sync::Arc;

/// Every configured listener with what it serves; every problem found, each naming its key.
pub fn listens(config: &Config) -> Result<Vec<Listen>, ConfigError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    // A WebSocket message carries MQTT packets: a bound just above the packet limit.
    let max_message = (config.limits.max_packet_size as usize).saturating_add(64 * 1024);
    for (i, l) in config.listeners.iter().enumerate() {
        let tls = if l.kind.is_tls() {
            match server_config(i, l) {
                Ok(c) => Some(c),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        } else {
            None
        };
        let ws = l.kind.is_ws().then(|| {
            Arc::new(WsSettings {
                path: l.path.clone().unwrap_or_else(|| DEFAULT_WS_PATH.to_owned()),
                max_message,
            })
        });
        out.push(Listen {
            addr: l.bind,
            allow_anonymous: l.allow_anonymous,
            transport: TransportKind {
                tls: tls.map(|c| Arc::new(arc_swap::ArcSwap::new(c))),
                ws,
                proxy: l.proxy_protocol,
                cert_username: l.cert_as_username.map(|c| match c {
                    CertIdentity::Cn => CertName::Cn,
                    CertIdentity::San => CertName::San,
                }),
            },
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// SIGHUP: re-reads the certificate files of every TLS listener and swaps them in; new
/// connections use them, connections under way keep theirs. A listener whose files fail
/// keeps serving the old ones, and the reason is logged. Returns the listeners reloaded and
/// the problems.
pub fn reload_tls(config: &Config, listens: &[Listen]) -> (usize, Vec<Problem>) {
    let mut reloaded = 0;
    let mut problems = Vec::new();
    for (i, (l, listen)) in config.listeners.iter().zip(listens).enumerate() {
        let Some(cell) = &listen.transport.tls else {
            continue;
        };
        match server_config(i, l) {
            Ok(c) => {
                cell.store(c);
                reloaded += 1;
            }
            Err(p) => problems.push(p),
        }
    }
    (reloaded, problems)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls settings of listener `i`.
pub fn server_config(i: usize, l: &ListenerConfig) -> Result<Arc<ServerConfig>, Problem> {
    let at = |name: &str| format!("listeners[{i}].{name}");
    let shown = |p: &Path| format!("\"{}\"", p.display());
    let (Some(cert), Some(key)) = (&l.cert, &l.key) else {
        return Err(problem(
            &at("cert"),
            "(missing)",
            "a tls listener needs cert and key",
        ));
    };
    let certs = read_certs(cert).map_err(|why| problem(&at("cert"), &shown(cert), &why))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        problem(
            &at("key"),
            &shown(key),
            &format!(
                "no private key read: {e} (give a PEM file with a PKCS#8, PKCS#1 or SEC1 key)"
            ),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(&at("kind"), "\"tls\"", &e.to_string()))?;
    let builder = match &l.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = read_certs(ca).map_err(|why| problem(&at("ca"), &shown(ca), &why))?;
            for c in cas {
                roots.add(c).map_err(|e| {
                    problem(
                        &at("ca"),
                        &shown(ca),
                        &format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| problem(&at("ca"), &shown(ca), &e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key_der).map_err(|e| {
        problem(
            &at("key"),
            &shown(key),
            &format!("does not go with cert {}: {e}", shown(cert)),
        )
    })?;
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_listener(cert: &str, key: &str) -> ListenerConfig {
        ListenerConfig {
            cert: Some(cert.into()),
            key: Some(key.into()),
            ..ListenerConfig::new(
                "127.0.0.1:8883".parse().unwrap(),
                crate::config::ListenerKind::Tls,
            )
        }
    }

    #[test]
    fn a_missing_certificate_file_names_the_key_and_the_path() {
        let l = tls_listener("/nonexistent/cert.pem", "/nonexistent/key.pem");
        let p = server_config(2, &l).unwrap_err();
        assert_eq!(p.key, "listeners[2].cert");
        assert!(p.message.contains("/nonexistent/cert.pem"), "{}", p.message);
        assert!(p.message.contains("cannot read"), "{}", p.message);
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("ringmq-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let l = tls_listener(empty.to_str().unwrap(), empty.to_str().unwrap());
        let p = server_config(0, &l).unwrap_err();
        assert_eq!(p.key, "listeners[0].cert");
        assert!(p.message.contains("no PEM certificate"), "{}", p.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
