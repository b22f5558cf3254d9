//! The final result of a run: what was expected, what arrived, how fast and how late, and
//! what the harness itself cost; printed as a table for people or one JSON object for scripts.
//!
//! Run-wide loss is computed here, where the scenario is known: expected deliveries minus
//! unique (publisher, sequence) arrivals at each subscriber. Streams alone cannot see a lost
//! tail, and in a shared subscription no single member sees a whole stream.

use crate::spec::Scenario;
use crate::stats::{Counters, Hists, Summary};
use serde::Serialize;

/// Deliveries the scenario should produce for `c.published` messages.
pub fn expected(scenario: Scenario, c: &Counters) -> Option<u64> {
    match scenario {
        Scenario::Fanin | Scenario::P2p | Scenario::Shared => Some(c.published),
        Scenario::Fanout => Some(c.published * c.subscribed),
        Scenario::Conn | Scenario::Sub | Scenario::Pub => None,
    }
}

#[derive(Debug, Serialize)]
pub struct Connections {
    pub target: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub refused: u64,
    pub closed_by_peer: u64,
    pub subscribed: u64,
    pub sub_failed: u64,
    /// Seconds from start to every worker connected (and subscribed).
    pub connect_phase_s: f64,
    pub connect_rate: f64,
    pub connect_us: Summary,
}

#[derive(Debug, Serialize)]
pub struct Messages {
    pub qos: u8,
    pub payload: usize,
    pub published: u64,
    pub acked: u64,
    pub expected: Option<u64>,
    pub received: u64,
    pub unique: u64,
    pub lost: Option<u64>,
    pub duplicates: u64,
    pub reordered: u64,
    /// Per-stream gaps; not meaningful (None) for shared subscriptions, where each member
    /// sees only part of every publisher's stream.
    pub gaps: Option<u64>,
    pub foreign: u64,
    /// Seconds from `go` to the end of publishing.
    pub publish_s: f64,
    pub publish_rate: f64,
    /// Unique deliveries per second, from `go` to the last arrival.
    pub receive_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Harness {
    pub workers: usize,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// CPU time of the harness (parent and workers) per message published or received.
    pub cpu_ns_per_msg: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub scenario: &'static str,
    pub command: String,
    pub hosts: Vec<String>,
    pub source_addresses: usize,
    pub connections: Connections,
    pub messages: Messages,
    pub latency_us: Summary,
    pub ack_us: Summary,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub harness: Harness,
}

/// Times the parent observed.
pub struct Timing {
    pub connect_phase_s: f64,
    pub publish_s: f64,
    pub receive_s: f64,
}

pub struct Inputs<'a> {
    pub scenario: Scenario,
    pub command: String,
    pub hosts: Vec<String>,
    pub source_addresses: usize,
    pub workers: usize,
    pub qos: u8,
    pub payload: usize,
    pub counters: &'a Counters,
    pub hists: &'a Hists,
    pub timing: Timing,
    /// Harness CPU (user, system) in µs: workers and parent.
    pub cpu_us: (u64, u64),
}

fn rate(n: u64, s: f64) -> f64 {
    if s > 0.0 {
        (n as f64 / s * 10.0).round() / 10.0
    } else {
        0.0
    }
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn build(i: Inputs) -> RunReport {
    let c = i.counters;
    let expected = expected(i.scenario, c);
    let msgs = c.published + c.received;
    let cpu_ns = (i.cpu_us.0 + i.cpu_us.1) as f64 * 1000.0;
    RunReport {
        scenario: i.scenario.name(),
        command: i.command,
        hosts: i.hosts,
        source_addresses: i.source_addresses,
        connections: Connections {
            target: c.conn_target,
            attempted: c.conn_attempted,
            connected: c.connected,
            failed: c.conn_failed,
            refused: c.connack_refused,
            closed_by_peer: c.closed_by_peer,
            subscribed: c.subscribed,
            sub_failed: c.sub_failed,
            connect_phase_s: r3(i.timing.connect_phase_s),
            connect_rate: rate(c.connected, i.timing.connect_phase_s),
            connect_us: Summary::of(&i.hists.connect),
        },
        messages: Messages {
            qos: i.qos,
            payload: i.payload,
            published: c.published,
            acked: c.pub_acked,
            expected,
            received: c.received,
            unique: c.received_unique,
            lost: expected.map(|e| e.saturating_sub(c.received_unique)),
            duplicates: c.duplicates,
            reordered: c.reordered,
            gaps: (i.scenario != Scenario::Shared).then_some(c.gaps),
            foreign: c.foreign,
            publish_s: r3(i.timing.publish_s),
            publish_rate: rate(c.published, i.timing.publish_s),
            receive_rate: rate(c.received_unique, i.timing.receive_s),
        },
        latency_us: Summary::of(&i.hists.latency),
        ack_us: Summary::of(&i.hists.ack),
        bytes_out: c.bytes_out,
        bytes_in: c.bytes_in,
        harness: Harness {
            workers: i.workers,
            cpu_user_s: r3(i.cpu_us.0 as f64 / 1e6),
            cpu_sys_s: r3(i.cpu_us.1 as f64 / 1e6),
            cpu_ns_per_msg: (msgs > 0).then(|| (cpu_ns / msgs as f64).round()),
        },
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn lat_row(name: &str, s: &Summary) -> String {
    if s.count == 0 {
        return format!("{name:<12} -\n");
    }
    format!(
        "{name:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        s.count,
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.p999),
        ms(s.max)
    )
}

/// The human table.
pub fn table(r: &RunReport) -> String {
    let (c, m, h) = (&r.connections, &r.messages, &r.harness);
    let mut s = format!("ringmq-bench {} -> {}\n", r.scenario, r.hosts.join(","));
    s += &format!(
        "connections  {} / {} connected, {} failed, {} refused, {} closed by broker; {:.1} conn/s over {:.2} s\n",
        c.connected, c.target, c.failed, c.refused, c.closed_by_peer, c.connect_rate, c.connect_phase_s
    );
    if c.subscribed + c.sub_failed > 0 {
        s += &format!(
            "subscribed   {} ok, {} refused\n",
            c.subscribed, c.sub_failed
        );
    }
    if m.published + m.received > 0 {
        if m.published > 0 {
            s += &format!(
                "published    {} (QoS {}, {} B) in {:.2} s = {:.1} msg/s, {} acked\n",
                m.published, m.qos, m.payload, m.publish_s, m.publish_rate, m.acked
            );
        }
        let dash = |x: Option<u64>| x.map_or("-".to_string(), |e| e.to_string());
        if m.received > 0 || m.expected.is_some() {
            s += &format!(
                "received     {} unique of {} expected = {:.1} msg/s; lost {}, duplicates {}, reordered {}, gaps {}\n",
                m.unique,
                dash(m.expected),
                m.receive_rate,
                dash(m.lost),
                m.duplicates,
                m.reordered,
                dash(m.gaps)
            );
        }
        if m.foreign > 0 {
            s += &format!(
                "foreign      {} messages without the harness header\n",
                m.foreign
            );
        }
    }
    s += &format!(
        "{:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "ms", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    s += &lat_row("connect", &c.connect_us);
    if r.latency_us.count > 0 {
        s += &lat_row("end-to-end", &r.latency_us);
    }
    if r.ack_us.count > 0 {
        s += &lat_row("pub->ack", &r.ack_us);
    }
    s += &format!(
        "harness      {} worker(s), cpu {:.2} s user + {:.2} s sys{}\n",
        h.workers,
        h.cpu_user_s,
        h.cpu_sys_s,
        h.cpu_ns_per_msg
            .map_or(String::new(), |n| format!(" = {n:.0} ns per message"))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_deliveries_per_scenario() {
        let c = Counters {
            published: 1000,
            subscribed: 7,
            ..Default::default()
        };
        assert_eq!(expected(Scenario::P2p, &c), Some(1000));
        assert_eq!(expected(Scenario::Fanin, &c), Some(1000));
        assert_eq!(expected(Scenario::Shared, &c), Some(1000));
        assert_eq!(expected(Scenario::Fanout, &c), Some(7000));
        assert_eq!(expected(Scenario::Sub, &c), None);
    }

    #[test]
    fn loss_rates_and_cpu_per_message() {
        let c = Counters {
            conn_target: 20,
            connected: 20,
            published: 1000,
            received: 995,
            received_unique: 990,
            duplicates: 5,
            ..Default::default()
        };
        let h = Hists::default();
        let r = build(Inputs {
            scenario: Scenario::P2p,
            command: "p2p".into(),
            hosts: vec!["127.0.0.1:1883".into()],
            source_addresses: 0,
            workers: 1,
            qos: 1,
            payload: 64,
            counters: &c,
            hists: &h,
            timing: Timing {
                connect_phase_s: 0.5,
                publish_s: 2.0,
                receive_s: 2.5,
            },
            cpu_us: (1500, 490),
        });
        assert_eq!(r.messages.lost, Some(10));
        assert_eq!(r.messages.publish_rate, 500.0);
        assert_eq!(r.messages.receive_rate, 396.0);
        assert_eq!(r.connections.connect_rate, 40.0);
        // 1,990 µs of CPU over 1,995 messages = 997.49 ns, rounded.
        assert_eq!(r.harness.cpu_ns_per_msg, Some(997.0));
        let t = table(&r);
        assert!(t.contains("lost 10, duplicates 5"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["messages"]["lost"], 10);
        assert_eq!(j["connections"]["connected"], 20);
    }
}
