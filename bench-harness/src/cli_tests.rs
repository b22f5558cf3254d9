//! Tests of the command line: flag parsing and the run plan `build` derives from it.

use super::*;

fn parse(args: &[&str]) -> Result<(RunSpec, Phases)> {
    let cli = Cli::try_parse_from(std::iter::once("ringmq-bench").chain(args.iter().copied()))?;
    build(&cli.cmd)
}

#[test]
fn emqtt_bench_flags_parse() {
    let (s, p) = parse(&[
        "pub",
        "-h",
        "127.0.0.1,localhost",
        "-p",
        "1999",
        "-c",
        "10",
        "-n",
        "5",
        "-R",
        "50",
        "-I",
        "20",
        "-L",
        "7",
        "-q",
        "2",
        "-r",
        "true",
        "-s",
        "64",
        "-t",
        "x/%i",
        "-V",
        "5",
        "-k",
        "30",
        "-C",
        "false",
        "-x",
        "3600",
        "--inflight",
        "4",
        "--duration",
        "9",
        "--json",
    ])
    .unwrap();
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.hosts[0].port(), 1999);
    assert_eq!(
        s.groups,
        vec![Group {
            role: Role::Pub,
            start: 5,
            count: 10,
            topic: "x/%i".into(),
            ordinal_base: 0
        }]
    );
    assert_eq!(
        (s.rate, s.interval_ms, s.limit, s.qos, s.retain, s.payload),
        (50, 20, 7, 2, true, 64)
    );
    assert_eq!(
        (
            s.version,
            s.keepalive,
            s.clean,
            s.session_expiry,
            s.inflight
        ),
        (5, 30, false, 3600, 4)
    );
    assert_eq!((p.duration_s, p.json), (9, true));
    assert_eq!(s.workers, 1);
}

#[test]
fn scenarios_make_their_groups() {
    let (s, _) = parse(&["p2p", "-c", "10"]).unwrap();
    assert_eq!(s.groups.len(), 2);
    assert_eq!(
        (
            s.groups[0].role,
            s.groups[0].count,
            s.groups[0].topic.as_str()
        ),
        (Role::Sub, 10, "bench/p2p/%i")
    );
    assert_eq!(
        (
            s.groups[1].role,
            s.groups[1].count,
            s.groups[1].ordinal_base
        ),
        (Role::Pub, 10, 10)
    );
    let (s, _) = parse(&["shared", "-c", "1000", "--subs", "5"]).unwrap();
    assert_eq!(s.groups[0].topic, "$share/g/bench/shared/#");
    assert_eq!((s.count(Role::Sub), s.count(Role::Pub)), (5, 1000));
    let (s, _) = parse(&["fanout", "-c", "1000"]).unwrap();
    assert_eq!((s.count(Role::Sub), s.count(Role::Pub)), (1000, 1));
    let (s, _) = parse(&["fanin", "-c", "100"]).unwrap();
    assert_eq!(
        (
            s.count(Role::Sub),
            s.count(Role::Pub),
            s.groups[0].topic.as_str()
        ),
        (1, 100, "bench/fanin/#")
    );
    let (s, p) = parse(&["conn", "-c", "40000", "--hold", "3"]).unwrap();
    assert_eq!((s.workers, p.hold_s), (3, 3));
}

#[test]
fn refusals_name_the_fix() {
    let e = parse(&["conn", "--ws", "--ws-path", "mqtt"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must start with /"), "{e}");
    let e = parse(&["conn", "--tls", "--cafile", "/nonexistent.pem"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cafile /nonexistent.pem"), "{e}");
    let e = parse(&["p2p", "-s", "10"]).unwrap_err().to_string();
    assert!(e.contains("use -s 24 or more"), "{e}");
    assert!(parse(&["pub", "-c", "1"])
        .unwrap_err()
        .to_string()
        .contains("-t TOPIC is required"));
    assert!(parse(&["pub", "-t", "a/%z"]).is_err());
    assert!(parse(&["conn", "-c", "1", "-V", "6"]).is_err());
}

#[test]
fn tls_and_ws_flags_make_the_tunnel() {
    let (s, _) = parse(&["conn", "--tls", "--ws", "--server-name", "broker.example"]).unwrap();
    let tls = s.tunnel.tls.as_ref().unwrap();
    assert_eq!(
        (tls.server_name.as_str(), tls.cafile.as_ref()),
        ("broker.example", None)
    );
    assert_eq!(s.tunnel.ws_path.as_deref(), Some("/mqtt"));
    let (s, _) = parse(&["conn"]).unwrap();
    assert!(s.tunnel.is_plain());
}

#[test]
fn dash_h_is_the_host_and_help_is_long_only() {
    let (s, _) = parse(&["conn", "-h", "127.0.0.9", "-c", "1"]).unwrap();
    assert_eq!(s.hosts[0].ip().to_string(), "127.0.0.9");
    let e = Cli::try_parse_from(["ringmq-bench", "conn", "--help"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
}
