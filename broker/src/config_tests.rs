//! Unit tests of config parsing and validation: defaults, the exact message for each bad key,
//! unknown keys, syntax errors, and the schema list kept in step with the types and the docs.

use std::net::SocketAddr;

use super::*;
use crate::config_schema::{keys_of, KEYS, NO_DEFAULT, TOP_KEYS};

/// Parses and validates, returning the error lines (empty when the config is good).
fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_str(text).and_then(|c| c.validate().map(|()| c)) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

fn one_problem(text: &str) -> String {
    let mut p = problems(text);
    assert_eq!(p.len(), 1, "{text:?} gave {p:?}");
    p.remove(0)
}

#[test]
fn empty_file_is_the_embedded_defaults() {
    let parsed = Config::from_toml_str("").unwrap();
    assert_eq!(parsed, Config::default());
    parsed.validate().unwrap();
    let d = Config::default();
    assert_eq!(d.shards, 0);
    assert_eq!(
        d.listeners,
        vec![ListenerConfig::new(
            "127.0.0.1:1883".parse().unwrap(),
            ListenerKind::Tcp
        )]
    );
    assert_eq!(d.limits.max_connections, 1_000_000);
    assert_eq!(d.limits.max_packet_size, 1_048_576);
    assert_eq!(d.limits.max_inflight, 256);
    assert_eq!(d.limits.max_queued_messages, 1000);
    assert_eq!(d.limits.max_subscriptions_per_client, 100);
    assert_eq!(d.limits.max_topic_levels, 32);
    assert_eq!(d.limits.max_keepalive, 65535);
    assert_eq!(d.limits.max_client_id_len, 256);
    assert_eq!(d.session.max_session_expiry, 4_294_967_295);
    assert_eq!(d.session.max_offline_sessions, 1_000_000);
    assert_eq!(d.retained.max_messages, 1_000_000);
    assert_eq!(d.retained.max_bytes, 1_073_741_824);
    assert_eq!(d.auth.allow_anonymous, None);
    assert!(
        d.auth.anonymous_allowed(),
        "no password file: anonymous clients in"
    );
    assert_eq!(d.log.level, "info");
    assert_eq!(d.log.format, LogFormat::Text);
    assert_eq!(d.sys.interval, 10);
    assert_eq!(d.limits.receive_maximum, 1024);
    assert_eq!(d.limits.topic_alias_maximum, 64);
    assert_eq!(d.limits.max_message_expiry, 0);
    assert_eq!(d.shared.strategy, crate::config::SharedStrategy::RoundRobin);
}

#[test]
fn mqtt5_keys_reach_the_shard_config() {
    let text = "[limits]\nreceive_maximum = 5\ntopic_alias_maximum = 0\nmax_message_expiry = 60\n\
                [shared]\nstrategy = \"hash\"\n";
    let config = Config::from_toml_str(text).unwrap();
    config.validate().unwrap();
    let s = crate::startup::shard_config(&config);
    assert_eq!(s.receive_maximum, 5);
    assert_eq!(s.topic_alias_maximum, 0);
    assert_eq!(s.max_message_expiry, 60);
    assert_eq!(s.shared_strategy, shard::SharedStrategy::Hash);
    for (name, want) in [
        ("round_robin", shard::SharedStrategy::RoundRobin),
        ("random", shard::SharedStrategy::Random),
        ("sticky", shard::SharedStrategy::Sticky),
    ] {
        let c = Config::from_toml_str(&format!("[shared]\nstrategy = \"{name}\"")).unwrap();
        assert_eq!(crate::startup::shard_config(&c).shared_strategy, want);
    }
}

#[test]
fn printed_config_reads_back_unchanged() {
    let text = "shards = 3\n[[listeners]]\nbind = \"[::]:1884\"\n[[listeners]]\nbind = \"10.0.0.1:1883\"\n\
                [limits]\nmax_inflight = 7\n[log]\nlevel = \"warn,broker=debug\"\nformat = \"json\"\n";
    let config = Config::from_toml_str(text).unwrap();
    assert_eq!(config.shards, 3);
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(
        config.listeners[0].bind,
        "[::]:1884".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.limits.max_inflight, 7);
    assert_eq!(
        config.limits.max_packet_size, 1_048_576,
        "unset keys keep their default"
    );
    assert_eq!(config.log.format, LogFormat::Json);
    let again = Config::from_toml_str(&config.to_toml_string()).unwrap();
    assert_eq!(again, config);
}

#[test]
fn a_listener_entry_without_keys_takes_the_defaults() {
    let config = Config::from_toml_str("[[listeners]]\nkind = \"tcp\"\n").unwrap();
    assert_eq!(config.listeners, vec![ListenerConfig::default()]);
}

#[test]
fn every_bad_value_names_key_value_and_fix() {
    let cases: &[(&str, &str)] = &[
        ("shards = 257", "shards = 257: must be 0..=256 (0 = one shard per online CPU; 256 is the most the route table's shard set holds)"),
        ("shards = -1", "shards = -1: must be 0..=256 (0 = one shard per online CPU; 256 is the most the route table's shard set holds)"),
        ("[limits]\nmax_connections = 0", "limits.max_connections = 0: must be 1..=4294967295 (set it to e.g. 1000000)"),
        ("[limits]\nmax_connections = 4294967296", "limits.max_connections = 4294967296: must be 1..=4294967295 (set it to e.g. 1000000)"),
        ("[limits]\nmax_packet_size = 63", "limits.max_packet_size = 63: must be 64..=268435460 bytes (set it to e.g. 1048576; 268435460 is the largest packet MQTT can frame)"),
        ("[limits]\nmax_packet_size = 268435461", "limits.max_packet_size = 268435461: must be 64..=268435460 bytes (set it to e.g. 1048576; 268435460 is the largest packet MQTT can frame)"),
        ("[limits]\nmax_inflight = 0", "limits.max_inflight = 0: must be 1..=65535 (set it to e.g. 256)"),
        ("[limits]\nmax_inflight = 65536", "limits.max_inflight = 65536: must be 1..=65535 (set it to e.g. 256)"),
        ("[limits]\nmax_inflight = \"32\"", "limits.max_inflight = \"32\": must be 1..=65535 (set it to e.g. 256)"),
        ("[limits]\nmax_inflight = 32.5", "limits.max_inflight = 32.5: must be 1..=65535 (set it to e.g. 256)"),
        ("[limits]\nmax_queued_messages = 0", "limits.max_queued_messages = 0: must be 1..=4294967295 (set it to e.g. 1000)"),
        ("[limits]\nmax_subscriptions_per_client = 0", "limits.max_subscriptions_per_client = 0: must be 1..=4294967295 (set it to e.g. 100)"),
        ("[limits]\nmax_topic_levels = 0", "limits.max_topic_levels = 0: must be 1..=65535 (set it to e.g. 32)"),
        ("[limits]\nmax_keepalive = 0", "limits.max_keepalive = 0: must be 1..=65535 seconds (set it to e.g. 65535)"),
        ("[limits]\nmax_keepalive = 70000", "limits.max_keepalive = 70000: must be 1..=65535 seconds (set it to e.g. 65535)"),
        ("[limits]\nmax_client_id_len = 22", "limits.max_client_id_len = 22: must be 23..=65535 bytes (MQTT requires at least 23 [MQTT-3.1.3-5]; set it to e.g. 256)"),
        ("[session]\nmax_session_expiry = 4294967296", "session.max_session_expiry = 4294967296: must be 0..=4294967295 seconds (0 ends every session at disconnect; e.g. 86400)"),
        ("[session]\nmax_offline_sessions = 0", "session.max_offline_sessions = 0: must be 1..=4294967295 (set it to e.g. 1000000)"),
        ("[retained]\nmax_messages = 0", "retained.max_messages = 0: must be 1..=4294967295 (set it to e.g. 1000000)"),
        ("[retained]\nmax_bytes = 0", "retained.max_bytes = 0: must be 1..=9223372036854775807 bytes (set it to e.g. 1073741824 (1 GiB))"),
        ("[auth]\nallow_anonymous = \"yes\"", "auth.allow_anonymous = \"yes\": must be true or false (without quotes)"),
        ("[log]\nlevel = \"verbose\"", "log.level = \"verbose\": must be a level (off, error, warn, info, debug, trace) or a filter like \"info,broker=debug\" (set it to e.g. \"info\")"),
        ("[log]\nlevel = \"info,broker=loud\"", "log.level = \"info,broker=loud\": must be a level (off, error, warn, info, debug, trace) or a filter like \"info,broker=debug\" (set it to e.g. \"info\")"),
        ("[log]\nlevel = \"\"", "log.level = \"\": must be a level (off, error, warn, info, debug, trace) or a filter like \"info,broker=debug\" (set it to e.g. \"info\")"),
        ("[log]\nformat = \"xml\"", "log.format = \"xml\": must be \"text\" or \"json\" (set it to e.g. \"text\")"),
        ("[limits]\nreceive_maximum = 0", "limits.receive_maximum = 0: must be 1..=65535 (set it to e.g. 1024)"),
        ("[limits]\ntopic_alias_maximum = 65536", "limits.topic_alias_maximum = 65536: must be 0..=65535 (0 turns topic aliases off; e.g. 64)"),
        ("[limits]\nmax_message_expiry = -1", "limits.max_message_expiry = -1: must be 0..=4294967295 seconds (0 = no limit; e.g. 86400)"),
        ("[shared]\nstrategy = \"fair\"", "shared.strategy = \"fair\": must be one of \"round_robin\", \"random\", \"sticky\", \"hash\" (set it to e.g. \"round_robin\")"),
        ("[sys]\ninterval = 86401", "sys.interval = 86401: must be 0..=86400 seconds (0 disables $SYS; e.g. 10)"),
        ("[[listeners]]\nbind = \"localhost:1883\"", "listeners[0].bind = \"localhost:1883\": must be IP:PORT, e.g. \"0.0.0.0:1883\" or \"[::]:1883\" (host names are not resolved)"),
        ("[[listeners]]\nbind = \"127.0.0.1\"", "listeners[0].bind = \"127.0.0.1\": must be IP:PORT, e.g. \"0.0.0.0:1883\" or \"[::]:1883\" (host names are not resolved)"),
        ("[[listeners]]\nbind = \"127.0.0.1:1883\"\n[[listeners]]\nkind = \"quic\"", "listeners[1].kind = \"quic\": must be one of \"tcp\", \"tls\", \"ws\", \"wss\" (e.g. \"tls\" with cert and key)"),
        ("[[listeners]]\nbind = \"0.0.0.0:8883\"\nkind = \"tls\"\nkey = \"k.pem\"", "listeners[0].cert = (missing): a tls listener needs cert and key (PEM files), e.g. cert = \"/etc/ringmq/server.pem\""),
        ("[[listeners]]\nbind = \"0.0.0.0:8084\"\nkind = \"wss\"\ncert = \"c.pem\"", "listeners[0].key = (missing): a wss listener needs cert and key (PEM files), e.g. cert = \"/etc/ringmq/server.pem\""),
        ("[[listeners]]\nbind = \"0.0.0.0:8883\"\nkind = \"tls\"\ncert = \"c.pem\"\nkey = \"k.pem\"\npath = \"/mqtt\"", "listeners[0].path = \"/mqtt\": only ws and wss listeners take a path (this one is kind = \"tls\"; set kind = \"ws\" or \"wss\", or remove the key)"),
        ("[[listeners]]\nbind = \"0.0.0.0:8083\"\nkind = \"ws\"\npath = \"mqtt\"", "listeners[0].path = \"mqtt\": must be a URL path starting with / and without spaces, e.g. \"/mqtt\""),
        ("[[listeners]]\nbind = \"0.0.0.0:1883\"\nca = \"ca.pem\"", "listeners[0].ca = \"ca.pem\": only tls and wss listeners take certificate files (this one is kind = \"tcp\"; set kind = \"tls\" or \"wss\", or remove the key)"),
        ("listeners = []", "listeners = []: at least one listener is needed (add [[listeners]] with bind = \"127.0.0.1:1883\")"),
        ("[[listeners]]\nbind = \"127.0.0.1:1883\"\n[[listeners]]\nbind = \"127.0.0.1:1883\"", "listeners[1].bind = \"127.0.0.1:1883\": overlaps listeners[0].bind = \"127.0.0.1:1883\" (give each listener its own port)"),
        ("[[listeners]]\nbind = \"[::1]:1883\"\n[[listeners]]\nbind = \"[::]:1883\"", "listeners[1].bind = \"[::]:1883\": overlaps listeners[0].bind = \"[::1]:1883\" (give each listener its own port)"),
        ("listeners = 5", "listeners = 5: must be an array of tables, written [[listeners]] (see docs/configuration.md)"),
        ("limits = 3", "limits = 3: must be a table, written [limits] (see docs/configuration.md)"),
    ];
    for (text, expected) in cases {
        assert_eq!(one_problem(text), *expected, "for {text:?}");
    }
}

#[test]
fn values_at_the_edges_of_their_ranges_are_accepted() {
    let text = "shards = 256\n[[listeners]]\nbind = \"0.0.0.0:1883\"\n[[listeners]]\nbind = \"[::]:1883\"\n\
                [[listeners]]\nbind = \"127.0.0.1:1884\"\n\
                [limits]\nmax_connections = 1\nmax_packet_size = 268435460\nmax_inflight = 65535\n\
                max_client_id_len = 23\nmax_keepalive = 1\n[session]\nmax_session_expiry = 0\n\
                [retained]\nmax_bytes = 9223372036854775807\n[sys]\ninterval = 0\n\
                [log]\nlevel = \"WARN, broker::listener=trace,glommio=off\"\n";
    assert_eq!(problems(text), Vec::<String>::new());
    let mut config = Config::from_toml_str("[limits]\nmax_packet_size = 64").unwrap();
    config.validate().unwrap();
    config.retained.max_bytes = i64::MAX as u64 + 1;
    assert_eq!(config.validate().unwrap_err().lines(), vec![
        "retained.max_bytes = 9223372036854775808: must be 1..=9223372036854775807 bytes (set it to e.g. 1073741824 (1 GiB))"
    ]);
}

#[test]
fn validation_reports_every_problem_at_once() {
    let text =
        "shards = 300\n[limits]\nmax_inflight = 0\nmax_topic_levels = 0\n[log]\nlevel = \"loud\"\n";
    let lines = problems(text);
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "shards",
            "limits.max_inflight",
            "limits.max_topic_levels",
            "log.level"
        ]
    );
    match Config::from_toml_str(text).unwrap().validate() {
        Err(ConfigError::Invalid(p)) => {
            assert_eq!(p.len(), 4);
            assert_eq!(p[1].key, "limits.max_inflight");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_named_with_the_valid_keys_of_their_table() {
    let limits = "max_connections, max_packet_size, max_inflight, max_queued_messages, \
                  offline_queue_policy, stuck_timeout, link_credit, max_pending_output, max_subscriptions_per_client, max_topic_levels, max_keepalive, max_client_id_len, \
                  receive_maximum, topic_alias_maximum, connect_timeout, max_message_expiry";
    assert_eq!(
        one_problem("[limits]\nmax_inflght = 3"),
        format!("unknown key limits.max_inflght (did you mean max_inflight?); valid keys in [limits]: {limits}")
    );
    assert_eq!(
        one_problem("[limits]\ncolour = 3"),
        format!("unknown key limits.colour; valid keys in [limits]: {limits}")
    );
    assert_eq!(
        one_problem("[[listeners]]\nbind = \"127.0.0.1:1883\"\n[[listeners]]\nport = 1884"),
        "unknown key listeners[1].port; valid keys in [[listeners]]: bind, kind, cert, key, ca, path, cert_as_username, allow_anonymous, proxy_protocol"
    );
    assert_eq!(
        one_problem("max_inflight = 3"),
        "unknown key max_inflight (did you mean limits.max_inflight? it belongs under [limits]); \
         valid top-level keys: shards, listeners, limits, session, retained, auth, log, sys, shared"
    );
    assert_eq!(
        one_problem("bind = \"0.0.0.0:1883\""),
        "unknown key bind (did you mean listeners.bind? it belongs under [[listeners]]); \
         valid top-level keys: shards, listeners, limits, session, retained, auth, log, sys, shared"
    );
    assert_eq!(
        one_problem("shard = 2"),
        "unknown key shard (did you mean shards?); \
         valid top-level keys: shards, listeners, limits, session, retained, auth, log, sys, shared"
    );
    assert_eq!(
        one_problem("[tls]\ncert = \"x\""),
        "unknown key tls; valid top-level keys: shards, listeners, limits, session, retained, auth, log, sys, shared"
    );
    // All unknown keys at once, before any value is looked at.
    let lines = problems("[sys]\nintervall = 5\n[log]\nlevle = \"x\"\nformat = \"xml\"\n");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "unknown key log.levle (did you mean level?); valid keys in [log]: level, format"
    ));
    assert!(lines[1].starts_with(
        "unknown key sys.intervall (did you mean interval?); valid keys in [sys]: interval"
    ));
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = Config::from_toml_str("shards = 1\n[limits\nmax_inflight = 3\n").unwrap_err();
    match &err {
        ConfigError::Syntax {
            file: None,
            line: 2,
            column: 8,
            message,
        } => {
            assert_eq!(message, "invalid table header; expected `.`, `]`");
        }
        other => panic!("expected a syntax error at 2:8, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "TOML syntax error at line 2, column 8: invalid table header; expected `.`, `]`"
    );
    let err = Config::from_toml_str("[limits]\nmax_inflight = 3\nmax_inflight = 4\n").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 3,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Config::from_toml_str("[log]\nlevel = \"info\n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("ringmq-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits\n").unwrap();
    let err = Config::load(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "TOML syntax error in {} at line 1, column 8: invalid table header; expected `.`, `]`",
            bad.display()
        )
    );
    let missing = dir.join("missing.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(&err, ConfigError::Read { path, .. } if *path == missing));
    assert!(err
        .to_string()
        .starts_with(&format!("cannot read config file {}: ", missing.display())));
    let good = dir.join("good.toml");
    std::fs::write(&good, "shards = 2\n").unwrap();
    assert_eq!(Config::load(&good).unwrap().shards, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zero_shards_means_one_per_online_cpu() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let mut config = Config::default();
    assert_eq!(config.shard_count(), cpus.min(256));
    config.shards = 5;
    assert_eq!(config.shard_count(), 5);
}

/// The leaf keys of a serialized default config, as `table.key` (array tables without index).
fn serialized_leaves() -> Vec<(String, toml::Value)> {
    let table: toml::Table = toml::from_str(&Config::default().to_toml_string()).unwrap();
    let mut out = Vec::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(t) => {
                out.extend(t.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)))
            }
            toml::Value::Array(items) => {
                for item in items {
                    let t = item.as_table().unwrap().clone();
                    out.extend(t.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)));
                }
            }
            v => out.push((name, v)),
        }
    }
    out
}

#[test]
fn schema_lists_every_key_with_its_true_default() {
    let mut leaves = serialized_leaves();
    leaves.sort_by(|a, b| a.0.cmp(&b.0));
    // Keys without a default (certificate paths) are left out of the serialized defaults.
    let mut spec: Vec<&str> = KEYS
        .iter()
        .filter(|s| s.default != NO_DEFAULT)
        .map(|s| s.key)
        .collect();
    spec.sort_unstable();
    assert_eq!(
        leaves.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        spec
    );
    for (key, value) in leaves {
        let s = KEYS.iter().find(|s| s.key == key).unwrap();
        let default: toml::Table = toml::from_str(&format!("v = {}", s.default)).unwrap();
        assert_eq!(default["v"], value, "default of {key} in KEYS");
    }
    for top in TOP_KEYS {
        assert!(KEYS
            .iter()
            .any(|s| s.key == *top || s.key.starts_with(&format!("{top}."))));
    }
    assert_eq!(
        keys_of("listeners"),
        [
            "bind",
            "kind",
            "cert",
            "key",
            "ca",
            "path",
            "cert_as_username",
            "allow_anonymous",
            "proxy_protocol"
        ]
    );
}

#[test]
fn docs_describe_every_key() {
    let docs = include_str!("../../docs/configuration.md");
    for s in KEYS {
        let leaf = s.key.rsplit('.').next().unwrap();
        assert!(
            docs.contains(&format!("`{leaf}`")),
            "docs/configuration.md lacks `{leaf}` ({})",
            s.key
        );
        assert!(
            docs.contains(s.doc),
            "docs/configuration.md lacks the text for {}: {}",
            s.key,
            s.doc
        );
    }
    for flag in [
        "--config",
        "--listen",
        "--shards",
        "--log-level",
        "--check-config",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--ws-listen",
        "--help",
        "--version",
    ] {
        assert!(docs.contains(flag), "docs/configuration.md lacks {flag}");
    }
}
