//! The parent process of a run: starts the workers (this same binary, `worker` subcommand),
//! drives the phases (connect -> go -> drain -> stop), shows a live progress line on a
//! terminal, merges the workers' counters and histograms and prints the result.
//!
//! Every phase has a deadline, so a run always ends by itself: connect phase at most
//! `--connect-timeout`, then `--hold` (conn) or `--duration` (publishing), then `--drain`.
//! The parent never touches a broker socket.

use crate::cli::Phases;
use crate::engine::sys;
use crate::report::{self, Inputs, Timing};
use crate::spec::{RunSpec, Scenario};
use crate::stats::{self, Counters, Hists, Summary};
use crate::wire::{self, Command};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

enum Msg {
    Report(usize, Box<wire::Report>),
    Eof(usize, Option<String>),
}

struct WorkerState {
    child: Child,
    stdin: Option<ChildStdin>,
    counters: Counters,
    ready: bool,
    done: bool,
    finals: Option<Hists>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Running,
    Draining,
    Stopping,
}

pub fn run(spec: RunSpec, phases: Phases, command: String) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let spec_json = serde_json::to_string(&spec)?;
    let (tx, rx) = mpsc::channel();
    let mut ws = Vec::new();
    let t0 = Instant::now();
    for i in 0..spec.workers {
        let mut child = std::process::Command::new(&exe)
            .arg("worker")
            .arg("--spec")
            .arg(&spec_json)
            .arg("--index")
            .arg(i.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting worker {i}"))?;
        let out = child.stdout.take().context("worker stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || pump(i, out, tx));
        let stdin = child.stdin.take();
        ws.push(WorkerState {
            child,
            stdin,
            counters: Counters::default(),
            ready: false,
            done: false,
            finals: None,
        });
    }
    drop(tx);

    let tty = sys::isatty(2) && !phases.json;
    let pubs = matches!(
        spec.scenario,
        Scenario::Pub | Scenario::Fanin | Scenario::Fanout | Scenario::P2p | Scenario::Shared
    );
    let has_subs = spec.count(crate::spec::Role::Sub) > 0;
    let mut stage = Stage::Connecting;
    let (mut t_ready, mut t_pub_end, mut t_stop) =
        (None::<Instant>, None::<Instant>, None::<Instant>);
    let mut t_last_rx = None::<Instant>;
    let mut last_unique = 0u64;
    let mut interval = Hists::default();
    let mut last_tick = Instant::now();
    let mut last_line = Counters::default();
    let connect_deadline = t0 + Duration::from_secs(spec.connect_timeout_s + 5);

    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Report(i, r)) => {
                let w = &mut ws[i];
                match r.tag {
                    wire::READY => w.ready = true,
                    wire::PROGRESS => interval.merge(&r.hists)?,
                    _ => {
                        w.finals = Some(r.hists);
                        w.done = true;
                    }
                }
                w.counters = r.counters;
            }
            Ok(Msg::Eof(i, err)) => {
                if let Some(e) = err {
                    eprintln!("ringmq-bench: worker {i}: {e}");
                }
                ws[i].done = true;
                ws[i].ready = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        let mut total = Counters::default();
        for w in &ws {
            total += &w.counters;
        }
        if total.received_unique != last_unique {
            last_unique = total.received_unique;
            t_last_rx = Some(now);
        }
        match stage {
            Stage::Connecting if ws.iter().all(|w| w.ready) || now > connect_deadline => {
                if now > connect_deadline && !ws.iter().all(|w| w.ready) {
                    eprintln!(
                        "ringmq-bench: connect phase timed out; going on with what is connected"
                    );
                }
                t_ready = Some(now);
                send(&mut ws, Command::Go);
                stage = Stage::Running;
            }
            Stage::Running => {
                let run_for = if spec.scenario == Scenario::Conn {
                    phases.hold_s
                } else {
                    phases.duration_s
                };
                let elapsed = now - t_ready.unwrap_or(now);
                let pubs_done = pubs
                    && spec.limit > 0
                    && total.publishers > 0
                    && total.pub_finished >= total.publishers;
                if elapsed >= Duration::from_secs(run_for) || pubs_done {
                    t_pub_end = Some(now);
                    if pubs && (has_subs || spec.qos > 0) {
                        send(&mut ws, Command::Drain);
                        stage = Stage::Draining;
                    } else {
                        send(&mut ws, Command::Stop);
                        (stage, t_stop) = (Stage::Stopping, Some(now));
                    }
                }
            }
            Stage::Draining => {
                // Everything sent has arrived (and, at QoS 1/2, been acknowledged).
                let acked = spec.qos == 0 || total.pub_acked >= total.published;
                let delivered = !has_subs
                    || report::expected(spec.scenario, &total)
                        .is_some_and(|e| total.received_unique >= e);
                let all_in = acked && delivered;
                if all_in || now - t_pub_end.unwrap_or(now) >= Duration::from_secs(phases.drain_s) {
                    send(&mut ws, Command::Stop);
                    (stage, t_stop) = (Stage::Stopping, Some(now));
                }
            }
            Stage::Stopping if now - t_stop.unwrap_or(now) > Duration::from_secs(30) => {
                eprintln!("ringmq-bench: workers did not finish in 30 s; killing them");
                for w in &mut ws {
                    let _ = w.child.kill();
                }
                break;
            }
            _ => {}
        }
        if ws.iter().all(|w| w.done) {
            break;
        }
        if now - last_tick >= Duration::from_secs(1) {
            let dt = (now - last_tick).as_secs_f64();
            if tty || phases.progress {
                let p99 = Summary::of(&interval.latency).p99;
                let line = format!(
                    "[{:6.1}s] conn {}/{} (+{:.0}/s, {} failed)  out {:.0} msg/s  in {:.0} msg/s  \
                     p99 {:.3} ms",
                    (now - t0).as_secs_f64(),
                    total.connected,
                    total.conn_target,
                    total.connected.saturating_sub(last_line.connected) as f64 / dt,
                    total.conn_failed,
                    (total.published - last_line.published) as f64 / dt,
                    (total.received - last_line.received) as f64 / dt,
                    p99 as f64 / 1000.0
                );
                if phases.progress {
                    eprintln!("ringmq-bench: {line}");
                } else {
                    eprint!("\r{line}   ");
                }
            }
            interval.reset();
            last_line = total;
            last_tick = now;
        }
    }
    if tty && !phases.progress {
        eprintln!();
    }
    for w in &mut ws {
        w.stdin.take();
        let _ = w.child.wait();
    }
    let mut total = Counters::default();
    let mut hists = Hists::default();
    for w in &ws {
        total += &w.counters;
        if let Some(h) = &w.finals {
            hists.merge(h)?;
        }
    }
    let missing = ws.iter().filter(|w| w.finals.is_none()).count();
    if missing > 0 {
        eprintln!("ringmq-bench: {missing} worker(s) ended without a final report; their last progress counts are used");
    }
    let (cu, cs) = stats::cpu_us(true);
    let (pu, ps) = stats::cpu_us(false);
    let t_ready = t_ready.unwrap_or(t0);
    let t_pub_end = t_pub_end.unwrap_or(t_ready);
    let r = report::build(Inputs {
        scenario: spec.scenario,
        command,
        hosts: spec.hosts.iter().map(|h| h.to_string()).collect(),
        source_addresses: spec.sources.len(),
        workers: spec.workers,
        qos: spec.qos,
        payload: spec.payload,
        counters: &total,
        hists: &hists,
        timing: Timing {
            connect_phase_s: (t_ready - t0).as_secs_f64(),
            // Workers stamp their first and last messages on the shared monotonic clock;
            // the parent's own view (coarser by a progress interval) is the fallback.
            publish_s: span(total.first_pub_ns, total.last_pub_ns)
                .unwrap_or((t_pub_end - t_ready).as_secs_f64()),
            // From the first publish when this run published, else from the first arrival.
            receive_s: span(
                if total.first_pub_ns > 0 {
                    total.first_pub_ns
                } else {
                    total.first_rx_ns
                },
                total.last_rx_ns,
            )
            .unwrap_or((t_last_rx.unwrap_or(t_ready).max(t_ready) - t_ready).as_secs_f64()),
        },
        cpu_us: (cu + pu, cs + ps),
    });
    let mut out = std::io::stdout().lock();
    if phases.json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report::table(&r))?;
    }
    Ok(())
}

/// Seconds between two monotonic instants, when both exist and differ.
fn span(from_ns: u64, to_ns: u64) -> Option<f64> {
    (from_ns > 0 && to_ns > from_ns).then(|| (to_ns - from_ns) as f64 / 1e9)
}

fn send(ws: &mut [WorkerState], cmd: Command) {
    for w in ws.iter_mut() {
        if let Some(s) = w.stdin.as_mut() {
            // A worker that already exited has a closed pipe; its Eof is handled elsewhere.
            let _ = s.write_all(cmd.word().as_bytes()).and_then(|_| s.flush());
        }
    }
}

/// Reads one worker's frames and forwards them; runs on its own thread per worker.
fn pump(i: usize, mut out: impl Read, tx: mpsc::Sender<Msg>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match out.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send(Msg::Eof(i, None));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Msg::Eof(i, Some(e.to_string())));
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match wire::decode(&buf) {
                Ok(Some((r, used))) => {
                    buf.drain(..used);
                    if tx.send(Msg::Report(i, Box::new(r))).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Msg::Eof(i, Some(e.to_string())));
                    return;
                }
            }
        }
    }
}
