//! Codec benchmark: ringmq's decode/encode against the `mqttbytes` crate, side by side.
//!
//! A `harness = false` main that prints one JSON object per line: first a `meta` line
//! (load average, runs, iterations), then one line per case with `ringmq_ns_per_packet`,
//! `mqttbytes_ns_per_packet` and `ratio` = mqttbytes / ringmq (above 1: ringmq is faster).
//! Run: `cargo bench -p ringmq-codec --bench codec [-- NAME_SUBSTRING]`.
//!
//! Fairness rules this file must keep: both codecs see the same bytes (checked: each one's
//! encoding of a case is byte-identical to the other's), decode starts from a reused
//! `BytesMut` holding exactly one packet (refilled by the same copy for both), encode writes
//! into a reused, cleared `BytesMut`, inputs and outputs pass through `black_box`, and runs of
//! the two codecs alternate so that drift in machine load hits both. Each number is the
//! median of `RUNS` timed runs after a warm-up, timed on the thread's CPU clock so that time
//! spent preempted by other processes is not counted.

use bytes::{Bytes, BytesMut};
use codec::{
    decode, encode, ByteStr, Connect, EncodedPublish, Limits, Packet, PacketId, ProtocolVersion,
    Publish, QoS, Subscribe, SubscribeFilter,
};
use mqttbytes::v4;
use mqttbytes::v5;
use std::hint::black_box;
use std::time::{Duration, Instant};

const RUNS: usize = 15;
/// Target length of one timed run; iterations are calibrated to reach it.
const RUN_TARGET: Duration = Duration::from_millis(30);
const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

/// This thread's CPU time in ns. Timing with it rather than the wall clock leaves out the
/// time the thread sits preempted, which on a small shared machine is most of the noise.
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Times `f` once for `iters` iterations; thread-CPU ns per iteration.
fn time_run(iters: u64, f: &mut dyn FnMut()) -> f64 {
    let start = thread_cpu_ns();
    for _ in 0..iters {
        f();
    }
    (thread_cpu_ns() - start) as f64 / iters as f64
}

/// Picks an iteration count so one run of `f` takes about `RUN_TARGET` (also the warm-up).
/// `CODEC_BENCH_ITERS=N` fixes it instead, so that instruction counts from
/// `valgrind --tool=callgrind` divide by a known number.
fn calibrate(f: &mut dyn FnMut()) -> u64 {
    if let Some(n) = std::env::var("CODEC_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let mut iters = 64u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= RUN_TARGET / 4 {
            let per = took.as_nanos().max(1) as f64 / iters as f64;
            return ((RUN_TARGET.as_nanos() as f64 / per) as u64).max(1);
        }
        iters *= 4;
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The case-name filter: the first argument that is not a flag (cargo passes `--bench`).
fn selected(name: &str) -> bool {
    match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(filter) => name.contains(&filter),
        None => true,
    }
}

/// Runs ours and theirs alternately, `RUNS` times each, and prints the case's JSON line.
fn compare(name: &str, ours: &mut dyn FnMut(), theirs: Option<&mut dyn FnMut()>) {
    if !selected(name) {
        return;
    }
    let ours_iters = calibrate(ours);
    let mut theirs = theirs.map(|t| {
        let iters = calibrate(t);
        (t, iters)
    });
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let runs = if std::env::var_os("CODEC_BENCH_ITERS").is_some() {
        1
    } else {
        RUNS
    };
    for _ in 0..runs {
        a.push(time_run(ours_iters, ours));
        if let Some((t, iters)) = theirs.as_mut() {
            b.push(time_run(*iters, *t));
        }
    }
    let ours_ns = median(a);
    let theirs_ns = (!b.is_empty()).then(|| median(b));
    let line = serde_json::json!({
        "name": name,
        "ringmq_ns_per_packet": round2(ours_ns),
        "mqttbytes_ns_per_packet": theirs_ns.map(round2),
        "ratio": theirs_ns.map(|t| round2(t / ours_ns)),
    });
    println!("{line}");
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn payload(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn our_publish(qos: QoS, payload: &Bytes) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteStr::from_static(TOPIC),
        packet_id: (qos != QoS::AtMostOnce).then(|| PacketId::new(4242).expect("nonzero")),
        properties: Default::default(),
        payload: payload.clone(),
    }
}

fn their_qos(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

fn our_bytes(p: &Packet, v: ProtocolVersion) -> Bytes {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).expect("benchmark packet encodes");
    out.freeze()
}

/// Decode case: both decoders start from `buf` refilled with `frame` (one whole packet).
fn bench_decode(name: &str, frame: &Bytes, v: ProtocolVersion, theirs: Option<fn(&mut BytesMut)>) {
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(frame.len() * 2);
    let mut ours = || {
        buf.extend_from_slice(black_box(frame));
        let p = decode(&mut buf, &limits, v);
        assert!(matches!(p, Ok(Some(_))));
        let _ = black_box(p);
    };
    let mut tbuf = BytesMut::with_capacity(frame.len() * 2);
    let mut their_fn = theirs.map(|read| {
        move || {
            tbuf.extend_from_slice(black_box(frame));
            read(&mut tbuf);
        }
    });
    compare(
        name,
        &mut ours,
        their_fn.as_mut().map(|f| f as &mut dyn FnMut()),
    );
}

fn their_read_v4(buf: &mut BytesMut) {
    let p = v4::read(buf, 1 << 20);
    assert!(p.is_ok());
    let _ = black_box(p);
}

fn their_read_v5(buf: &mut BytesMut) {
    let p = v5::read(buf, 1 << 20);
    assert!(p.is_ok());
    let _ = black_box(p);
}

/// Encode case: both encoders write into a reused, cleared buffer. Checks first that both
/// produce the same bytes, so the comparison is like for like.
fn bench_encode(
    name: &str,
    ours_p: &Packet,
    v: ProtocolVersion,
    theirs: &mut dyn FnMut(&mut BytesMut),
) {
    let mut check = BytesMut::new();
    theirs(&mut check);
    assert_eq!(
        &check[..],
        &our_bytes(ours_p, v)[..],
        "{name}: encodings differ"
    );
    let mut buf = BytesMut::with_capacity(4096);
    let mut ours = || {
        buf.clear();
        encode(black_box(ours_p), v, &mut buf).expect("encodes");
        black_box(&buf);
    };
    let mut tbuf = BytesMut::with_capacity(4096);
    let mut their_fn = || {
        tbuf.clear();
        theirs(&mut tbuf);
        black_box(&tbuf);
    };
    compare(name, &mut ours, Some(&mut their_fn));
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn main() {
    println!(
        "{}",
        serde_json::json!({"meta": "codec", "runs": RUNS, "run_ms": RUN_TARGET.as_millis() as u64, "clock": "thread_cpu",
            "loadavg_start": load_average()})
    );

    for (size, label) in [(64usize, "64B"), (1024, "1KiB")] {
        let body = payload(size);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let q = qos.as_u8();
            let ours = Packet::Publish(our_publish(qos, &body));
            let mut theirs = v4::Publish::from_bytes(TOPIC, their_qos(qos), body.clone());
            if qos != QoS::AtMostOnce {
                theirs.pkid = 4242;
            }
            let frame = our_bytes(&ours, V4);
            bench_decode(
                &format!("decode_publish_qos{q}_{label}_v311"),
                &frame,
                V4,
                Some(their_read_v4),
            );
            bench_encode(
                &format!("encode_publish_qos{q}_{label}_v311"),
                &ours,
                V4,
                &mut |b| {
                    theirs.write(b).expect("mqttbytes encodes");
                },
            );

            let frame5 = our_bytes(&ours, ProtocolVersion::V5);
            bench_decode(
                &format!("decode_publish_qos{q}_{label}_v5"),
                &frame5,
                ProtocolVersion::V5,
                Some(their_read_v5),
            );
            let mut theirs5 = v5::Publish::from_bytes(TOPIC, their_qos(qos), body.clone());
            theirs5.pkid = theirs.pkid;
            bench_encode(
                &format!("encode_publish_qos{q}_{label}_v5"),
                &ours,
                ProtocolVersion::V5,
                &mut |b| {
                    theirs5.write(b).expect("mqttbytes encodes");
                },
            );

            // The broker's fan-out path: encode once, rewrite only the packet id (ours only).
            if let Packet::Publish(p) = &ours {
                let enc = EncodedPublish::new(p, V4).expect("encodes");
                let mut buf = BytesMut::with_capacity(4096);
                let mut id = 1u16;
                let mut reuse = || {
                    buf.clear();
                    id = id.wrapping_add(1).max(1);
                    let pid = (qos != QoS::AtMostOnce)
                        .then(|| PacketId::new(id))
                        .flatten();
                    enc.write_to(pid, false, &mut buf);
                    black_box(&buf);
                };
                compare(
                    &format!("encode_publish_reuse_qos{q}_{label}_v311"),
                    &mut reuse,
                    None,
                );
            }
        }
    }

    // CONNECT as a typical device sends it: client id, user name, password, keep alive.
    let connect = Packet::Connect(Box::new(Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteStr::from_static("device-00042-bench"),
        will: None,
        username: Some(ByteStr::from_static("device-00042")),
        password: Some(Bytes::from_static(b"s3cret-token-0123456789")),
        properties: Default::default(),
    }));
    let mut their_connect = v4::Connect::new("device-00042-bench");
    their_connect.keep_alive = 60;
    their_connect.set_login("device-00042", "s3cret-token-0123456789");
    bench_decode(
        "decode_connect_v311",
        &our_bytes(&connect, V4),
        V4,
        Some(their_read_v4),
    );
    bench_encode("encode_connect_v311", &connect, V4, &mut |b| {
        their_connect.write(b).expect("mqttbytes encodes");
    });

    // SUBSCRIBE with three filters, wildcards included.
    let filters = [
        "sensors/+/temperature",
        "alerts/#",
        "devices/device-00042/commands",
    ];
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(7).expect("nonzero"),
        filters: filters
            .iter()
            .map(|f| SubscribeFilter::new(*f, QoS::AtLeastOnce))
            .collect(),
        properties: Default::default(),
    });
    let mut their_subscribe = v4::Subscribe::new_many(
        filters
            .iter()
            .map(|f| v4::SubscribeFilter::new(f.to_string(), mqttbytes::QoS::AtLeastOnce)),
    );
    their_subscribe.pkid = 7;
    bench_decode(
        "decode_subscribe_v311",
        &our_bytes(&subscribe, V4),
        V4,
        Some(their_read_v4),
    );
    bench_encode("encode_subscribe_v311", &subscribe, V4, &mut |b| {
        their_subscribe.write(b).expect("mqttbytes encodes");
    });

    println!(
        "{}",
        serde_json::json!({"meta": "codec", "loadavg_end": load_average()})
    );
}
