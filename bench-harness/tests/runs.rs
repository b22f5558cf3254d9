//! Real runs of the harness binary. The main one, against a real broker: 10 publisher/subscriber
//! pairs, 100 QoS 1 messages each, every message must arrive exactly once. Others: conn mode
//! ends by itself, refused connections are counted, a flood from the null broker ends on time.
//!
//! The p2p run goes against ringmq when its release binary exists and starts (`RINGMQ_BIN`, or
//! `target/release/ringmq`), and against Mosquitto when it is installed. A broker that is
//! missing is skipped with the reason printed; the test fails if neither can be run.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Broker {
    child: Child,
    port: u16,
    _dir: Option<PathBuf>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn mosquitto() -> Result<Broker, String> {
    let bin = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .ok_or("mosquitto is not installed (apt-get install mosquitto)")?;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ringmq-bench-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("mosquitto did not start: {e}"))?;
    let b = Broker {
        child,
        port,
        _dir: Some(dir),
    };
    if !wait_listening(port) {
        return Err("mosquitto did not listen within 10 s".into());
    }
    Ok(b)
}

fn ringmq() -> Result<Broker, String> {
    let bin = match std::env::var_os("RINGMQ_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or(root.join("target"));
            target.join("release/ringmq")
        }
    };
    if !bin.exists() {
        return Err(format!(
            "{} does not exist (cargo build --release -p ringmq)",
            bin.display()
        ));
    }
    let port = free_port();
    let mut child = Command::new(&bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{} did not start: {e}", bin.display()))?;
    // It prints "ringmq listening on mqtt://..." once every shard accepts.
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let b = Broker {
        child,
        port,
        _dir: None,
    };
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "ringmq did not report listening within 10 s".to_string())?;
    Ok(b)
}

/// Runs the harness and returns its JSON result.
fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(args)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .expect("run ringmq-bench");
    assert!(
        out.status.success(),
        "ringmq-bench failed: {:?}",
        out.status
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn p2p_against(b: &Broker) {
    let port = b.port.to_string();
    let r = bench(&[
        "p2p",
        "-p",
        &port,
        "-c",
        "10",
        "-L",
        "100",
        "-q",
        "1",
        "-I",
        "10",
        "--duration",
        "30",
    ]);
    let m = &r["messages"];
    assert_eq!(r["connections"]["connected"], 20, "{r}");
    assert_eq!(r["connections"]["subscribed"], 10, "{r}");
    assert_eq!(m["published"], 1000, "{r}");
    assert_eq!(m["acked"], 1000, "{r}");
    assert_eq!(m["expected"], 1000, "{r}");
    assert_eq!(m["received"], 1000, "{r}");
    assert_eq!(m["unique"], 1000, "{r}");
    assert_eq!(m["lost"], 0, "{r}");
    assert_eq!(m["duplicates"], 0, "{r}");
    assert_eq!(r["latency_us"]["count"], 1000, "{r}");
    assert_eq!(r["ack_us"]["count"], 1000, "{r}");
    assert!(
        r["harness"]["cpu_ns_per_msg"].as_f64().unwrap() > 0.0,
        "{r}"
    );
}

#[test]
fn p2p_qos1_small_run() {
    let mut ran = 0;
    for (name, start) in [
        ("ringmq", ringmq as fn() -> Result<Broker, String>),
        ("mosquitto", mosquitto),
    ] {
        match start() {
            Ok(b) => {
                eprintln!("p2p -c 10 -L 100 -q 1 against {name} on port {}", b.port);
                p2p_against(&b);
                ran += 1;
            }
            Err(why) => eprintln!("skipping {name}: {why}"),
        }
    }
    assert!(
        ran > 0,
        "no broker could be started (install mosquitto or build ringmq)"
    );
}

#[test]
fn conn_mode_holds_and_exits_by_itself() {
    let b = match mosquitto() {
        Ok(b) => b,
        Err(why) => return eprintln!("skipping: {why}"),
    };
    let port = b.port.to_string();
    let t = Instant::now();
    let r = bench(&["conn", "-p", &port, "-c", "50", "-R", "500", "--hold", "1"]);
    assert_eq!(r["connections"]["connected"], 50, "{r}");
    assert_eq!(r["connections"]["failed"], 0, "{r}");
    assert_eq!(r["connect_us"], serde_json::Value::Null);
    assert_eq!(r["connections"]["connect_us"]["count"], 50, "{r}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn refused_connections_are_counted_not_hung_on() {
    // Nothing listens on this port: every connect is refused, the run still ends.
    let port = free_port().to_string();
    let r = bench(&["conn", "-p", &port, "-c", "5", "--hold", "0"]);
    assert_eq!(r["connections"]["connected"], 0, "{r}");
    assert_eq!(r["connections"]["failed"], 5, "{r}");
}

/// The harness's own null broker floods a subscriber faster than one core can read: the run
/// must still end on time (the read budget per turn lets the parent's `stop` through), with
/// every message of the stream accounted for.
#[test]
fn flood_from_null_broker_ends_on_time_without_gaps() {
    let port = free_port();
    let mut nb = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(["null-broker", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("start null-broker");
    assert!(wait_listening(port), "null-broker did not listen");
    let t = Instant::now();
    let r = bench(&[
        "sub",
        "-p",
        &port.to_string(),
        "-c",
        "2",
        "-t",
        "flood",
        "--duration",
        "2",
    ]);
    let took = t.elapsed();
    let _ = nb.kill();
    let _ = nb.wait();
    let m = &r["messages"];
    assert!(took < Duration::from_secs(8), "a 2 s run took {took:?}");
    assert!(m["received"].as_u64().unwrap() > 10_000, "{r}");
    assert_eq!(m["received"], m["unique"], "{r}");
    assert_eq!(m["duplicates"], 0, "{r}");
    assert_eq!(m["gaps"], 0, "{r}");
    assert_eq!(m["foreign"], 0, "{r}");
}
