//! `[[listeners]]`: one entry per listener, its kind (tcp, tls, ws, wss) and what each kind
//! takes (certificate files, WebSocket path, PROXY protocol, anonymous policy). Part of the
//! typed `Config` (re-exported from `config`).

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::DEFAULT_PORT;

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// An IP address and port; host names are not resolved (a listener must not depend on DNS).
    pub bind: SocketAddr,
    pub kind: ListenerKind,
    /// TLS: the certificate chain (PEM), server certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// TLS: the private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// TLS: CA certificates (PEM); with it, clients must present a certificate it signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// WebSocket: the request path of the upgrade (`DEFAULT_WS_PATH` when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// TLS with `ca`: the client certificate's Common Name or first Subject Alternative
    /// Name is the username (the CONNECT's username and password are not used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_as_username: Option<CertIdentity>,
    /// Clients without a username may connect through this listener (over
    /// `auth.allow_anonymous`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// Every connection must start with a PROXY protocol v1 or v2 header, whose client
    /// address is the connection's; one without it is closed.
    pub proxy_protocol: bool,
}

/// The path WebSocket listeners serve MQTT at unless `path` says otherwise.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl ListenerConfig {
    /// A listener of `kind` on `bind` with no certificate files.
    pub fn new(bind: SocketAddr, kind: ListenerKind) -> Self {
        ListenerConfig {
            bind,
            kind,
            cert: None,
            key: None,
            ca: None,
            path: None,
            cert_as_username: None,
            allow_anonymous: None,
            proxy_protocol: false,
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig::new(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            ListenerKind::Tcp,
        )
    }
}

/// Which name of a client certificate is the username (`cert_as_username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertIdentity {
    /// The subject's Common Name.
    Cn,
    /// The first DNS name, e-mail address or URI among the Subject Alternative Names.
    San,
}

/// Transport of a listener: MQTT over TCP, TLS, WebSocket, or WebSocket over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    #[default]
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl ListenerKind {
    /// The kind carries TLS (and so takes cert, key and ca).
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Tls | ListenerKind::Wss)
    }

    /// The kind carries WebSocket framing (and so takes path).
    pub fn is_ws(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }

    /// The URL scheme of the kind, for the start-up line.
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "mqtt",
            ListenerKind::Tls => "mqtts",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }
}
