//! The command line, shaped like emqtt-bench's (`-h` hosts, `-c` count, `-I`, `-L`, ...), and
//! its translation into a [`RunSpec`]: groups of connections per scenario, resolved hosts,
//! source addresses and the number of worker processes.
//!
//! clap reserves `-h` and `-V` for help and version; both are turned off on the run
//! subcommands so `-h` is the host list and `-V` the protocol version, and `--help` stays.

use crate::pattern::TopicPattern;
use crate::plan;
use crate::spec::{Group, Role, RunSpec, Scenario};
use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

#[derive(Parser, Debug)]
#[command(
    name = "ringmq-bench",
    about = "MQTT load generator: connections, throughput, latency, loss",
    version
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open -c idle connections, hold them for --hold seconds, report connect latency and rate.
    Conn(ConnArgs),
    /// -c subscribers on -t (a filter; %i per subscriber) for --duration seconds.
    Sub(SubArgs),
    /// -c publishers on -t, one message every -I ms each, -L messages each.
    Pub(PubArgs),
    /// -c publishers (bench/fanin/%i) -> 1 subscriber (bench/fanin/#).
    Fanin(PubArgs),
    /// 1 publisher (bench/fanout) -> -c subscribers.
    Fanout(PubArgs),
    /// -c pairs: publisher i -> subscriber i on bench/p2p/%i.
    P2p(PubArgs),
    /// -c publishers (bench/shared/%i) -> --subs members of $share/g/bench/shared/#.
    Shared(PubArgs),
    /// Internal: one worker process of a run (started by the parent).
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// A stand-in broker for measuring the harness itself: acks and drops every publish;
    /// subscribing to `flood...` gets an endless QoS 0 stream (see docs/harness.md).
    #[command(hide = true)]
    NullBroker(NullBrokerArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NullBrokerArgs {
    #[arg(long, default_value = "127.0.0.1:18831")]
    pub listen: String,
    /// Payload size of the flood's messages.
    #[arg(short = 's', long, default_value_t = 64)]
    pub size: usize,
}

/// Flags every run subcommand has.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Print help (-h is the host list).
    #[arg(long = "help", action = ArgAction::Help)]
    print_help: Option<bool>,
    /// Broker hosts, comma-separated; connections rotate over them.
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Number of connections (per scenario: publishers, subscribers or pairs).
    #[arg(short = 'c', long, default_value_t = 200)]
    pub count: u64,
    /// Index of the first connection (%i and client ids), to split a run across machines.
    #[arg(short = 'n', long = "start", default_value_t = 0)]
    pub start: u64,
    /// New connections per second over the whole run (0: no limit).
    #[arg(short = 'R', long = "rate", default_value_t = 1000)]
    pub rate: u64,
    /// MQTT protocol version: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(short = 'V', long = "mqtt-version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// Keepalive in seconds.
    #[arg(short = 'k', long, default_value_t = 300)]
    pub keepalive: u16,
    /// Clean session (3.x) / clean start (5).
    #[arg(short = 'C', long, default_value_t = true, action = ArgAction::Set)]
    pub clean: bool,
    /// Session expiry interval in seconds (MQTT 5).
    #[arg(short = 'x', long = "session-expiry", default_value_t = 0)]
    pub session_expiry: u32,
    /// Source addresses to bind: list and ranges, e.g. 127.0.0.2-127.0.0.60,127.1.0.1.
    #[arg(long)]
    pub ifaddr: Option<String>,
    /// Worker processes (default: as many as the open-file limit needs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Username in every CONNECT.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password in every CONNECT (with -u).
    #[arg(short = 'P', long, requires = "username")]
    pub password: Option<String>,
    /// Client id prefix; ids are PREFIX-s<i>, PREFIX-p<i>, PREFIX-c<i>.
    #[arg(long, default_value = "rmqb")]
    pub prefix: String,
    /// Seconds allowed for the connect phase (default: 30 + 2 x count / rate).
    #[arg(long = "connect-timeout")]
    pub connect_timeout: Option<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A progress line every second on stderr, also when it is not a terminal (a log, a
    /// pipe; a terminal gets a live line anyway).
    #[arg(long)]
    pub progress: bool,
    /// MQTT over TLS (with --ws: WebSocket over TLS). Without --cafile the broker's
    /// certificate is not verified.
    #[arg(long)]
    pub tls: bool,
    /// CA certificates (PEM) to verify the broker's certificate with.
    #[arg(long, requires = "tls")]
    pub cafile: Option<std::path::PathBuf>,
    /// The name to ask the broker's certificate for (SNI, and checked with --cafile).
    #[arg(long = "server-name", default_value = "localhost")]
    pub server_name: String,
    /// MQTT over WebSocket (subprotocol mqtt).
    #[arg(long)]
    pub ws: bool,
    /// The WebSocket upgrade path.
    #[arg(long = "ws-path", default_value = "/mqtt")]
    pub ws_path: String,
}

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct ConnArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds to hold the connections once all are up.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
}

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct SubArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic filter pattern (%i, %c).
    #[arg(short = 't', long)]
    pub topic: String,
    /// Subscription QoS.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Seconds to receive.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
}

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct PubArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic pattern (%i, %c); each scenario has a default.
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// Subscriber filter for fanin/shared (default: derived from the scenario).
    #[arg(long = "sub-topic")]
    pub sub_topic: Option<String>,
    /// Milliseconds between messages of one publisher (0: as fast as the window allows).
    #[arg(short = 'I', long = "interval", default_value_t = 1000)]
    pub interval: u64,
    /// Messages per publisher (0: until --duration).
    #[arg(short = 'L', long = "limit", default_value_t = 0)]
    pub limit: u64,
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Retain flag on every message.
    #[arg(short = 'r', long, default_value_t = false, action = ArgAction::Set)]
    pub retain: bool,
    /// Payload size in bytes (at least 24: the timing header).
    #[arg(short = 's', long, default_value_t = 256)]
    pub size: usize,
    /// Unacknowledged QoS 1/2 messages per publisher.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds of publishing at most (the run stops earlier once -L is reached).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds to wait for messages still in flight after publishing ends.
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// shared: number of subscribers in the group.
    #[arg(long, default_value_t = 5)]
    pub subs: u64,
    /// shared: group name.
    #[arg(long, default_value = "g")]
    pub group: String,
}

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[arg(long)]
    pub spec: String,
    #[arg(long)]
    pub index: usize,
}

/// What the parent does beyond the spec: how long each phase may last.
#[derive(Debug, Clone)]
pub struct Phases {
    /// conn mode: seconds to hold once connected.
    pub hold_s: u64,
    /// Seconds of publishing / receiving after `go`.
    pub duration_s: u64,
    pub drain_s: u64,
    pub json: bool,
    /// Progress lines every second whatever stderr is (`--progress`).
    pub progress: bool,
}

/// Builds the run spec and phases for a run subcommand.
pub fn build(cmd: &Cmd) -> Result<(RunSpec, Phases)> {
    let (scenario, common) = match cmd {
        Cmd::Conn(a) => (Scenario::Conn, &a.common),
        Cmd::Sub(a) => (Scenario::Sub, &a.common),
        Cmd::Pub(a) => (Scenario::Pub, &a.common),
        Cmd::Fanin(a) => (Scenario::Fanin, &a.common),
        Cmd::Fanout(a) => (Scenario::Fanout, &a.common),
        Cmd::P2p(a) => (Scenario::P2p, &a.common),
        Cmd::Shared(a) => (Scenario::Shared, &a.common),
        Cmd::Worker(_) | Cmd::NullBroker(_) => bail!("not a run subcommand"),
    };
    if !common.ws_path.starts_with('/') {
        bail!(
            "--ws-path {}: must start with /, e.g. /mqtt",
            common.ws_path
        );
    }
    let tunnel = crate::engine::tunnel::TunnelSpec {
        tls: common.tls.then(|| crate::engine::tunnel::TlsSpec {
            server_name: common.server_name.clone(),
            cafile: common.cafile.clone(),
        }),
        ws_path: common.ws.then(|| common.ws_path.clone()),
    };
    // A bad CA file or server name stops the run here, not in every worker.
    tunnel.client_config()?;
    let c = common.count;
    let n = common.start;
    let mut groups: Vec<(Role, u64, String)> = Vec::new();
    let mut phases = Phases {
        hold_s: 0,
        duration_s: 0,
        drain_s: 0,
        json: common.json,
        progress: common.progress,
    };
    let (mut qos, mut retain, mut payload, mut interval_ms, mut limit, mut inflight) =
        (0, false, 0, 0, 0, 1);
    match cmd {
        Cmd::Conn(a) => {
            groups.push((Role::Idle, c, String::new()));
            phases.hold_s = a.hold;
        }
        Cmd::Sub(a) => {
            groups.push((Role::Sub, c, a.topic.clone()));
            qos = a.qos;
            phases.duration_s = a.duration;
        }
        Cmd::Pub(a) | Cmd::Fanin(a) | Cmd::Fanout(a) | Cmd::P2p(a) | Cmd::Shared(a) => {
            if a.size < crate::payload::HEADER_LEN {
                bail!(
                    "-s {}: the payload carries a {}-byte timing header; use -s 24 or more",
                    a.size,
                    crate::payload::HEADER_LEN
                );
            }
            let t = |d: &str| a.topic.clone().unwrap_or_else(|| d.to_string());
            match scenario {
                Scenario::Pub => {
                    let Some(topic) = a.topic.clone() else {
                        bail!("pub: -t TOPIC is required")
                    };
                    groups.push((Role::Pub, c, topic));
                }
                Scenario::Fanin => {
                    groups.push((
                        Role::Sub,
                        1,
                        a.sub_topic
                            .clone()
                            .unwrap_or_else(|| "bench/fanin/#".into()),
                    ));
                    groups.push((Role::Pub, c, t("bench/fanin/%i")));
                }
                Scenario::Fanout => {
                    let topic = t("bench/fanout");
                    groups.push((
                        Role::Sub,
                        c,
                        a.sub_topic.clone().unwrap_or_else(|| topic.clone()),
                    ));
                    groups.push((Role::Pub, 1, topic));
                }
                Scenario::P2p => {
                    let topic = t("bench/p2p/%i");
                    groups.push((
                        Role::Sub,
                        c,
                        a.sub_topic.clone().unwrap_or_else(|| topic.clone()),
                    ));
                    groups.push((Role::Pub, c, topic));
                }
                _ => {
                    let filter = format!("$share/{}/bench/shared/#", a.group);
                    groups.push((Role::Sub, a.subs, a.sub_topic.clone().unwrap_or(filter)));
                    groups.push((Role::Pub, c, t("bench/shared/%i")));
                }
            }
            (qos, retain, payload, interval_ms, limit, inflight) =
                (a.qos, a.retain, a.size, a.interval, a.limit, a.inflight);
            phases.duration_s = a.duration;
            phases.drain_s = a.drain;
        }
        Cmd::Worker(_) | Cmd::NullBroker(_) => unreachable!(),
    }
    for (_, _, t) in &groups {
        if !t.is_empty() {
            TopicPattern::parse(t)?;
        }
    }
    let total: u64 = groups.iter().map(|g| g.1).sum();
    if total == 0 {
        bail!("-c 0: nothing to do");
    }
    let hosts = resolve_hosts(&common.host, common.port)?;
    let host_ips: Vec<IpAddr> = hosts.iter().map(|h| h.ip()).collect();
    let ports = plan::local_port_count();
    let sources = match &common.ifaddr {
        Some(s) => plan::parse_ifaddrs(s)?,
        None => plan::auto_source_addrs(total, ports, &host_ips),
    };
    plan::check_port_capacity(total, sources.len(), hosts.len(), ports)?;
    let per_worker =
        plan::MAX_PER_WORKER.min(crate::engine::sys::raise_nofile().saturating_sub(256));
    let workers = plan::choose_workers(total, per_worker, common.workers)?;
    let connect_timeout_s = common
        .connect_timeout
        .unwrap_or(30 + 2 * total / common.rate.max(1));
    let mut ordinal = 0;
    let groups = groups
        .into_iter()
        .map(|(role, count, topic)| {
            // In fanout the single publisher, in fanin the single subscriber, is index n.
            let g = Group {
                role,
                start: n,
                count,
                topic,
                ordinal_base: ordinal,
            };
            ordinal += count;
            g
        })
        .collect();
    let spec = RunSpec {
        scenario,
        hosts,
        sources,
        groups,
        workers,
        rate: common.rate,
        interval_ms,
        limit,
        qos,
        retain,
        payload,
        version: common.version,
        keepalive: common.keepalive,
        clean: common.clean,
        session_expiry: common.session_expiry,
        inflight,
        prefix: common.prefix.clone(),
        username: common.username.clone(),
        password: common.password.clone(),
        connect_timeout_s,
        hard_deadline_s: connect_timeout_s
            + phases.hold_s
            + phases.duration_s
            + phases.drain_s
            + 30,
        tunnel,
    };
    Ok((spec, phases))
}

/// `-h a,b -p 1883` into socket addresses (IPv4 first when a name has both).
pub fn resolve_hosts(list: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for h in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let mut addrs: Vec<SocketAddr> = (h, port)
            .to_socket_addrs()
            .with_context(|| format!("-h {h}: cannot resolve"))?
            .collect();
        addrs.sort_by_key(|a| !a.is_ipv4());
        out.push(
            *addrs
                .first()
                .with_context(|| format!("-h {h}: no address"))?,
        );
    }
    if out.is_empty() {
        bail!("-h: no host given");
    }
    Ok(out)
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
