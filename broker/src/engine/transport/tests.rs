//! The transport seam's tests: plain pass-through, TLS and WebSocket sessions against real
//! rustls and tungstenite clients in memory.

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};

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

/// A server-side TLS transport under `config`.
fn tls_server(config: &Arc<rustls::ServerConfig>) -> Transport {
    Transport::new(&Kind {
        tls: Some(Arc::new(arc_swap::ArcSwap::new(config.clone()))),
        ws: None,
        proxy: false,
        cert_username: None,
    })
    .unwrap()
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
    let mut server = tls_server(&config);
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
    let mut server = tls_server(&config);
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
    let mut server = tls_server(&config);
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
    let mut server = tls_server(&config);
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
    assert_eq!(f.by_kind(), [50, 50, 0, 0]);
    assert_eq!(f.logged_count[0].get(), 1);
    assert_eq!(f.logged_count[1].get(), 1);
    f.failed(LOG_EVERY_MS + 1, 0, FailKind::Tls, "TLS: x");
    assert_eq!(f.logged_count[0].get(), 51);
    assert_eq!(f.logged_count[1].get(), 1);
}

#[test]
fn a_proxy_header_names_the_client_and_a_plain_connection_then_passes_bytes_through() {
    let kind = Kind {
        proxy: true,
        ..Kind::default()
    };
    let mut t = Transport::new(&kind).unwrap();
    let mut plain = BytesMut::new();
    // The header comes in two reads, the CONNECT right behind it.
    assert_eq!(
        t.input(b"PROXY TCP4 198.51.100.4 10.0.0.1 ", &mut plain)
            .unwrap(),
        Input::Open
    );
    assert_eq!(t.take_client(), None);
    assert!(!t.is_plain(), "still waiting for the header");
    let connect = b"\x10\x0c\x00\x04MQTT";
    let second = [&b"40000 1883\r\n"[..], connect].concat();
    assert_eq!(t.input(&second, &mut plain).unwrap(), Input::Open);
    assert_eq!(&plain[..], connect);
    assert_eq!(t.take_client(), Some("198.51.100.4:40000".parse().unwrap()));
    assert!(t.is_plain(), "no layer is left");
}

#[test]
fn a_proxy_listener_refuses_a_connection_without_the_header() {
    let kind = Kind {
        proxy: true,
        ..Kind::default()
    };
    let mut t = Transport::new(&kind).unwrap();
    let mut plain = BytesMut::new();
    let f = t.input(b"\x10\x0c\x00\x04MQTT", &mut plain).unwrap_err();
    assert!(matches!(f.kind, FailKind::Proxy));
    assert!(
        f.reason.contains("no PROXY protocol header"),
        "{}",
        f.reason
    );
    assert!(plain.is_empty());
}

#[test]
fn a_proxy_header_comes_before_tls() {
    let (config, mut client) = pair();
    let mut server = Transport::new(&Kind {
        tls: Some(Arc::new(arc_swap::ArcSwap::new(config))),
        ws: None,
        proxy: true,
        cert_username: None,
    })
    .unwrap();
    let mut plain = BytesMut::new();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[192, 0, 2, 9, 10, 0, 0, 1, 0x1F, 0x90, 0x07, 0x5B]);
    assert_eq!(server.input(&v2, &mut plain).unwrap(), Input::Open);
    assert_eq!(
        server.take_client(),
        Some("192.0.2.9:8080".parse().unwrap())
    );
    // The TLS handshake then runs as on any TLS listener.
    to_server(&mut client, &mut server);
    let answer = server.take_pending();
    assert!(!answer.is_empty(), "a ServerHello");
    to_client(&mut client, &answer);
    assert!(!server.is_plain());
}

#[test]
fn a_client_that_offers_the_post_quantum_hybrid_gets_it() {
    // The client here uses the same provider as the harness (aws-lc-rs, post-quantum first).
    let (config, mut client) = pair();
    let mut server = tls_server(&config);
    handshake(&mut client, &mut server);
    let group = client.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(group, rustls::NamedGroup::X25519MLKEM768);
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}
