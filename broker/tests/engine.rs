//! The real binary under systemd-style supervision and at its connection limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], env: &[(&str, &str)]) -> (Broker, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
    cmd.args(["--listen", &listen])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = [0u8; 64];
    let n = child.stdout.as_mut().unwrap().read(&mut line).unwrap();
    assert!(String::from_utf8_lossy(&line[..n]).starts_with("ringmq listening on"));
    (Broker(child), port)
}

/// A minimal MQTT 3.1.1 CONNECT for `id`, clean session, keepalive 60.
fn connect_bytes(id: &str) -> Vec<u8> {
    let mut v = vec![
        0x10,
        (12 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        2,
        0,
        60,
    ];
    v.extend_from_slice(&(id.len() as u16).to_be_bytes());
    v.extend_from_slice(id.as_bytes());
    v
}

fn connack(port: u16, id: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(&connect_bytes(id))?;
    let mut buf = [0u8; 4];
    let n = s.read(&mut buf)?;
    std::mem::forget(s); // keep the connection open for the rest of the test
    Ok(buf[..n].to_vec())
}

#[test]
fn notifies_systemd_ready_watchdog_and_stopping() {
    let dir = std::env::temp_dir().join(format!("ringmq-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let sock = UnixDatagram::bind(&dir).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let path = dir.to_str().unwrap();
    let (b, _) = start(
        &["--shards", "2"],
        &[("NOTIFY_SOCKET", path), ("WATCHDOG_USEC", "300000")],
    );
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = sock.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert_eq!(got, ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]);
    // SIGTERM: STOPPING=1 and a clean exit.
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(b.0.id() as i32, libc::SIGTERM) };
    loop {
        let n = sock.recv(&mut buf).unwrap();
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    let mut b = b;
    assert!(b.0.wait().unwrap().success());
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn connections_beyond_max_connections_are_closed_at_accept() {
    let cfg = std::env::temp_dir().join(format!("ringmq-maxconn-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[limits]\nmax_connections = 2\n").unwrap();
    let (_b, port) = start(&["--shards", "1", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(connack(port, "a").unwrap(), [0x20, 2, 0, 0]);
    assert_eq!(connack(port, "b").unwrap(), [0x20, 2, 0, 0]);
    let third = connack(port, "c");
    assert!(
        matches!(third.as_deref(), Ok([]) | Err(_)),
        "third connection refused: {third:?}"
    );
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn sigterm_sends_v5_clients_disconnect_server_shutting_down() {
    let (b, port) = start(&["--shards", "2"], &[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // MQTT 5 CONNECT: "MQTT" level 5, clean start, keepalive 60, no properties, id "v5".
    let id = b"v5";
    let mut pkt = vec![
        0x10,
        (13 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        5,
        2,
        0,
        60,
        0,
    ];
    pkt.extend_from_slice(&(id.len() as u16).to_be_bytes());
    pkt.extend_from_slice(id);
    s.write_all(&pkt).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(buf[0], 0x20, "CONNACK first: {:?}", &buf[..n]);
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(b.0.id() as i32, libc::SIGTERM) };
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    // DISCONNECT (0xE0), remaining length 1 or more, reason 0x8B Server shutting down.
    assert!(
        got.len() >= 3 && got[0] == 0xE0 && got[2] == 0x8B,
        "got {got:?}"
    );
    let mut b = b;
    assert!(b.0.wait().unwrap().success());
}
