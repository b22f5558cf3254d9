//! The engine's I/O paths with the real binary and raw sockets: a pause in the middle of a
//! read buffer (held packets handled in order on resume), packets split across reads, output
//! that the socket takes only in part, a hand-off to another shard with bytes in flight, and a
//! client that resets while a send to it is in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(shards: u32, config: &str) -> (Broker, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("ringmq-io-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ringmq.toml");
    std::fs::write(&conf, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--shards", &shards.to_string()])
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = [0u8; 64];
    let n = child.stdout.as_mut().unwrap().read(&mut line).unwrap();
    assert!(String::from_utf8_lossy(&line[..n]).starts_with("ringmq listening on"));
    (Broker(child), port)
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let mut n = body.len();
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        v.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(x.as_bytes());
    v
}

fn connect(id: &str) -> Vec<u8> {
    let mut body = s("MQTT");
    body.extend_from_slice(&[4, 2, 0, 60]);
    body.extend(s(id));
    frame(0x10, &body)
}

fn subscribe(pid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(s(filter));
    body.push(qos);
    frame(0x82, &body)
}

fn publish(topic: &str, payload: &[u8], qos: u8, pid: u16) -> Vec<u8> {
    let mut body = s(topic);
    if qos > 0 {
        body.extend_from_slice(&pid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

fn puback(pid: u16) -> Vec<u8> {
    frame(0x40, &pid.to_be_bytes())
}

/// A packet as read: first byte and body.
struct Pkt(u8, Vec<u8>);

impl Pkt {
    fn kind(&self) -> u8 {
        self.0 >> 4
    }
    /// (packet id, payload) of a PUBLISH.
    fn publish(&self) -> (Option<u16>, &[u8]) {
        let tlen = u16::from_be_bytes([self.1[0], self.1[1]]) as usize;
        let mut off = 2 + tlen;
        let pid = ((self.0 >> 1) & 3 > 0).then(|| {
            off += 2;
            u16::from_be_bytes([self.1[off - 2], self.1[off - 1]])
        });
        (pid, &self.1[off..])
    }
}

struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn open(port: u16, id: &str) -> Client {
        let mut c = Client::raw(port);
        c.send(&connect(id));
        assert_eq!(c.read().kind(), 2, "CONNACK");
        c
    }

    fn raw(port: u16) -> Client {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            sock,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.sock.write_all(b).unwrap();
    }

    fn read(&mut self) -> Pkt {
        loop {
            if self.buf.len() >= 2 {
                let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
                let mut complete = false;
                while i < self.buf.len() && i <= 4 {
                    let b = self.buf[i];
                    len += (b & 0x7f) as usize * mult;
                    mult *= 128;
                    i += 1;
                    if b & 0x80 == 0 {
                        complete = true;
                        break;
                    }
                }
                if complete && self.buf.len() >= i + len {
                    let body = self.buf[i..i + len].to_vec();
                    let first = self.buf[0];
                    self.buf.drain(..i + len);
                    return Pkt(first, body);
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.sock.read(&mut chunk).expect("read within 10 s");
            assert!(n > 0, "broker closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn a_pause_in_the_middle_of_a_read_holds_the_rest_and_loses_nothing() {
    let (_b, port) = start(1, "[limits]\nmax_queued_messages = 8\nmax_inflight = 2\n");
    let mut sub = Client::open(port, "held-sub");
    sub.send(&subscribe(1, "held/t", 1));
    assert_eq!(sub.read().kind(), 9, "SUBACK");
    let mut publisher = Client::open(port, "held-pub");
    // 300 QoS 1 PUBLISHes in one write: the broker pauses this publisher after a few of
    // them, with the rest already read into its buffer.
    let n = 300u16;
    let blob: Vec<u8> = (1..=n)
        .flat_map(|i| publish("held/t", format!("m{i}").as_bytes(), 1, i))
        .collect();
    publisher.send(&blob);
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    while got.len() < n as usize {
        let p = sub.read();
        assert_eq!(p.kind(), 3, "PUBLISH");
        let (pid, payload) = p.publish();
        got.push(String::from_utf8(payload.to_vec()).unwrap());
        sub.send(&puback(pid.unwrap()));
    }
    let want: Vec<_> = (1..=n).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "every message, in order");
    let acks = (0..n).filter(|_| publisher.read().kind() == 4).count();
    assert_eq!(acks, n as usize, "and every PUBACK");
}

#[test]
fn a_packet_split_across_many_reads_is_handled_once_complete() {
    let (_b, port) = start(1, "");
    let mut sub = Client::open(port, "split-sub");
    sub.send(&subscribe(1, "split/t", 0));
    assert_eq!(sub.read().kind(), 9);
    let mut publisher = Client::open(port, "split-pub");
    let payload = vec![b'x'; 3000];
    for b in publish("split/t", &payload, 0, 0).chunks(7) {
        publisher.send(b);
        std::thread::sleep(Duration::from_micros(200));
    }
    let p = sub.read();
    assert_eq!(p.publish().1, &payload[..]);
}

#[test]
fn output_the_socket_takes_in_part_arrives_whole_once_read() {
    let (_b, port) = start(1, "");
    let mut sub = Client::open(port, "slow-reader");
    sub.send(&subscribe(1, "part/t", 0));
    assert_eq!(sub.read().kind(), 9);
    let mut publisher = Client::open(port, "part-pub");
    // 3 MB of QoS 0 that the subscriber does not read yet: the socket fills, the rest waits
    // in the broker (under max_pending_write_bytes) for the writable edge.
    let payload = vec![b'p'; 100_000];
    for i in 0..30u8 {
        let mut body = payload.clone();
        body[0] = i;
        publisher.send(&publish("part/t", &body, 0, 0));
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..30u8 {
        let p = sub.read();
        let (_, body) = p.publish();
        assert_eq!(
            (body.len(), body[0]),
            (100_000, i),
            "whole frames, in order"
        );
    }
}

#[test]
fn a_hand_off_to_another_shard_carries_the_bytes_read_after_connect() {
    let (_b, port) = start(4, "");
    let started = Instant::now();
    for k in 0..24 {
        let id = format!("handoff-{k}");
        let topic = format!("ho/{k}");
        let mut c = Client::raw(port);
        // CONNECT, SUBSCRIBE and PUBLISH in one write: whichever shard accepts it, the
        // packets after CONNECT travel with the socket to the client's home shard.
        let mut blob = connect(&id);
        blob.extend(subscribe(1, &topic, 1));
        blob.extend(publish(&topic, id.as_bytes(), 1, 2));
        c.send(&blob);
        let mut kinds = Vec::new();
        let mut delivered = None;
        while kinds.len() < 4 {
            let p = c.read();
            if p.kind() == 3 {
                delivered = Some(p.publish().1.to_vec());
            }
            kinds.push(p.kind());
        }
        kinds.sort();
        assert_eq!(
            kinds,
            vec![2, 3, 4, 9],
            "CONNACK, PUBLISH, PUBACK, SUBACK for {id}"
        );
        assert_eq!(delivered.as_deref(), Some(id.as_bytes()));
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_client_that_resets_while_a_send_is_in_flight_is_cleaned_up_and_disturbs_no_one() {
    for shards in [1, 2] {
        let (_b, port) = start(shards, "");
        let mut other = Client::open(port, "bystander");
        other.send(&subscribe(1, "side/t", 1));
        assert_eq!(other.read().kind(), 9);
        let mut publisher = Client::open(port, "flood-pub");
        for round in 0..5u8 {
            let id = format!("resetter-{round}");
            let mut sub = Client::open(port, &id);
            sub.send(&subscribe(1, "flood/t", 0));
            assert_eq!(sub.read().kind(), 9);
            // More than the socket takes: sends stay in flight (or partial) when it goes.
            let payload = vec![round; 200_000];
            for _ in 0..20 {
                publisher.send(&publish("flood/t", &payload, 0, 0));
            }
            std::thread::sleep(Duration::from_millis(50));
            // An abortive close (RST) with the broker's output unread.
            let s2 = socket2::SockRef::from(&sub.sock);
            s2.set_linger(Some(Duration::ZERO)).unwrap();
            drop(sub);
        }
        // The broker serves everyone else, and the same ids connect again.
        publisher.send(&publish("side/t", b"after", 1, 7));
        assert_eq!(publisher.read().kind(), 4, "PUBACK");
        let p = other.read();
        assert_eq!((p.kind(), p.publish().1), (3, &b"after"[..]));
        let mut again = Client::open(port, "resetter-0");
        again.send(&subscribe(2, "flood/t", 0));
        assert_eq!(again.read().kind(), 9);
        publisher.send(&publish("flood/t", b"small", 0, 0));
        let p = again.read();
        assert_eq!(p.publish().1, b"small");
    }
}
