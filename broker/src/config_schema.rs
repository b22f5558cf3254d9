//! The list of every config key with its accepted values, fix hint, default and meaning, and
//! the two checks that need only this list: unknown keys and values of the wrong type.
//!
//! `KEYS` is the single source for error messages; a unit test keeps it in step with the
//! `Config` types and with docs/configuration.md. This module never reads files or logs.

use serde_path_to_error::{Path, Segment};

use crate::config::Problem;

/// One key of the config file.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Dotted key; keys inside `[[listeners]]` are written `listeners.bind`.
    pub key: &'static str,
    /// What the value must be, completing "must be ...".
    pub expect: &'static str,
    /// The fix, shown in parentheses after `expect`.
    pub hint: &'static str,
    /// The embedded default as TOML.
    pub default: &'static str,
    pub doc: &'static str,
}

/// Top-level keys in file order.
pub const TOP_KEYS: &[&str] = &[
    "shards",
    "listeners",
    "limits",
    "session",
    "retained",
    "auth",
    "log",
    "sys",
    "shared",
];

/// Top-level keys that hold a table, and `listeners`, which holds an array of tables.
const TABLES: &[&str] = &[
    "limits", "session", "retained", "auth", "log", "sys", "shared",
];
const ARRAY_TABLE: &str = "listeners";

const fn key(
    key: &'static str,
    expect: &'static str,
    hint: &'static str,
    default: &'static str,
    doc: &'static str,
) -> KeySpec {
    KeySpec {
        key,
        expect,
        hint,
        default,
        doc,
    }
}

/// The default of a key that has none (it is left out unless set).
pub const NO_DEFAULT: &str = "(none)";

/// Every leaf key, in the order of the schema in docs/configuration.md.
pub const KEYS: &[KeySpec] = &[
    key("shards", "0..=256", "0 = one shard per online CPU; 256 is the most the route table's shard set holds", "0",
        "Number of shards (one executor thread each). 0 = one per online CPU. May exceed the CPU count; executors are then not pinned."),
    key("listeners.bind", "IP:PORT, e.g. \"0.0.0.0:1883\" or \"[::]:1883\"", "host names are not resolved", "\"127.0.0.1:1883\"",
        "Address and port of one listener. Every shard binds it with SO_REUSEPORT."),
    key("listeners.kind", "one of \"tcp\", \"tls\", \"ws\", \"wss\"", "e.g. \"tls\" with cert and key", "\"tcp\"",
        "Transport of the listener: MQTT over TCP, over TLS 1.2/1.3 (tls, needs cert and key), over WebSocket (ws), or over WebSocket inside TLS (wss, needs cert and key)."),
    key("listeners.cert", "a path to a PEM file", "the certificate chain, server certificate first", NO_DEFAULT,
        "tls and wss listeners: the server's certificate chain (PEM)."),
    key("listeners.key", "a path to a PEM file", "PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key", NO_DEFAULT,
        "tls and wss listeners: the private key of cert (PEM)."),
    key("listeners.ca", "a path to a PEM file", "one or more CA certificates", NO_DEFAULT,
        "tls and wss listeners: with it, every client must present a certificate signed by one of these CAs (mutual TLS); without it, client certificates are not asked for."),
    key("listeners.path", "a URL path starting with /", "e.g. \"/mqtt\"", NO_DEFAULT,
        "ws and wss listeners: the path of the WebSocket upgrade; /mqtt when not set. The upgrade must ask for the subprotocol mqtt (or mqttv3.1)."),
    key("listeners.cert_as_username", "\"cn\" or \"san\"", "needs a tls or wss listener with ca", NO_DEFAULT,
        "tls and wss listeners with ca: the client certificate's Common Name (cn) or its first DNS, e-mail or URI Subject Alternative Name (san) is the client's username; the username and password in CONNECT are not used. A certificate without that name is refused (CONNACK 0x87, v3 0x05)."),
    key("listeners.allow_anonymous", "true or false", "set it to true or false", NO_DEFAULT,
        "Clients without a username may connect through this listener (true) or not (false), over auth.allow_anonymous; e.g. anonymous on a loopback listener, passwords on the public one."),
    key("listeners.proxy_protocol", "true or false", "set it to true or false", "false",
        "Every connection must start with a PROXY protocol header (v1 or v2, as HAProxy, nginx and cloud load balancers send); its client address is the one used in logs and client events. A connection without a valid one is closed and counted ($SYS/broker/clients/proxy_failed). Only for listeners that nothing but the proxy can reach."),
    key("limits.max_connections", "1..=4294967295", "set it to e.g. 1000000", "1000000",
        "Most client connections the broker holds at once. Needs an open-file limit above it."),
    key("limits.max_packet_size", "64..=268435460 bytes", "set it to e.g. 1048576; 268435460 is the largest packet MQTT can frame", "1048576",
        "Largest packet accepted, counted whole (fixed header included)."),
    key("limits.max_inflight", "1..=65535", "set it to e.g. 256", "256",
        "Outgoing QoS 1/2 messages awaiting acknowledgement per client; MQTT 5 uses the minimum with the client's Receive Maximum."),
    key("limits.max_queued_messages", "1..=4294967295", "set it to e.g. 1000", "1000",
        "Messages queued per session beyond the inflight window. For an online client it is where back-pressure starts: at 3/4 of it the publishers feeding the queue stop being read (nothing acknowledged is dropped). For an offline session it is a hard bound (see offline_queue_policy); QoS 0 goes first; every drop is counted per client and by reason."),
    key("limits.offline_queue_policy", "one of \"drop_oldest\", \"drop_newest\"", "set it to e.g. \"drop_oldest\"", "\"drop_oldest\"",
        "Which message an offline persistent session with a full queue loses: the oldest queued one (fresh data wins) or the new one (the publisher then gets 0x97 from MQTT 5 if no other subscriber took it)."),
    key("limits.stuck_timeout", "1..=4294967295 seconds", "set it to e.g. 30", "30",
        "A subscriber whose full queue holds publishers back, and that makes no progress (acknowledges nothing, its socket takes no bytes) for this many seconds, is disconnected (MQTT 5: DISCONNECT 0x97) and its session goes offline, so one dead client cannot stall a topic."),
    key("limits.link_credit", "0..=1000000 messages", "set it to e.g. 256", "256",
        "Per pair of shards: how many client QoS 1/2 messages one shard may pass to the other with their PUBACK/PUBREC sent at once. The other shard gives the credit back once per turn, when it has queued them; with none left, an acknowledgement waits until the other shard took the message, which slows publishers through their windows. Bounds what is under way between two cores (credit plus the publishers' windows); 0 makes every cross-shard acknowledgement wait."),
    key("limits.max_pending_output", "4096..=4294967295 bytes", "set it to e.g. 524288 (512 KiB)", "524288",
        "Unsent output one connection may hold before QoS 0 messages to it are dropped (counted as slow_consumer); QoS 1/2 are never dropped for it, their publishers are paused instead. Bounds the memory a slow QoS 0 subscriber costs: connections x this value at most."),
    key("limits.max_subscriptions_per_client", "1..=4294967295", "set it to e.g. 100", "100",
        "Most topic filters one client may hold."),
    key("limits.max_topic_levels", "1..=65535", "set it to e.g. 32", "32",
        "Most `/`-separated levels in a topic name or filter."),
    key("limits.max_keepalive", "1..=65535 seconds", "set it to e.g. 65535", "65535",
        "Largest keepalive a client may ask for, in seconds."),
    key("limits.max_client_id_len", "23..=65535 bytes", "MQTT requires at least 23 [MQTT-3.1.3-5]; set it to e.g. 256", "256",
        "Longest client id accepted, in bytes of UTF-8."),
    key("limits.receive_maximum", "1..=65535", "set it to e.g. 1024", "1024",
        "Incoming QoS 2 messages a client may have awaiting PUBREL, advertised to MQTT 5 clients as Receive Maximum; one more gets DISCONNECT 0x93."),
    key("limits.topic_alias_maximum", "0..=65535", "0 turns topic aliases off; e.g. 64", "64",
        "Topic Alias Maximum advertised to MQTT 5 clients, and the most aliases ringmq uses towards a client that allows them. 0 turns topic aliases off."),
    key("limits.connect_timeout", "1..=65535 seconds", "set it to e.g. 10", "10",
        "Seconds a new connection has to complete CONNECT (and any AUTH exchange) before it is closed; stops idle sockets that never speak MQTT from holding a slot."),
    key("limits.max_message_expiry", "0..=4294967295 seconds", "0 = no limit; e.g. 86400", "0",
        "Longest a message waits for delivery in a queue, in seconds; also caps a publisher's Message Expiry Interval. 0 = no limit."),
    key("session.max_session_expiry", "0..=4294967295 seconds", "0 ends every session at disconnect; e.g. 86400", "4294967295",
        "Cap on an MQTT 5 client's Session Expiry Interval, in seconds. 4294967295 = never expire."),
    key("session.max_offline_sessions", "1..=4294967295", "set it to e.g. 1000000", "1000000",
        "Most persistent sessions kept while their clients are disconnected."),
    key("retained.max_messages", "1..=4294967295", "set it to e.g. 1000000", "1000000",
        "Most retained messages kept, over all shards."),
    key("retained.max_bytes", "1..=9223372036854775807 bytes", "set it to e.g. 1073741824 (1 GiB)", "1073741824",
        "Most bytes of retained payload kept, over all shards."),
    key("auth.allow_anonymous", "true or false", "without quotes", NO_DEFAULT,
        "Whether clients without a user name may connect. Not set: true while no password_file is configured, false with one; the start-up line says which is in force. Refused clients get CONNACK 0x87 (v3 0x05)."),
    key("auth.password_file", "a path to a password file", "make one with ringmq passwd -c FILE USER, or use mosquitto_passwd's", NO_DEFAULT,
        "Users and password hashes in Mosquitto's format (user:$7$... PBKDF2-SHA512, or $6$ SHA-512), as mosquitto_passwd and ringmq passwd write them. A client with a username must match it: a wrong password or an unknown user gets CONNACK 0x86 (v3 0x04). Read at start-up; a line that cannot be read stops it naming the line."),
    key("auth.acl_file", "a path to an ACL file", "Mosquitto's acl_file format: user, topic and pattern lines", NO_DEFAULT,
        "Access rules in Mosquitto's acl_file format (topic and pattern lines with read, write, readwrite or deny; %u and %c in patterns). With it a client may publish and subscribe only where a rule allows; a denied SUBSCRIBE gets 0x87 (v3 0x80), a denied PUBLISH 0x87 (v3: acknowledged and dropped, counted). Read at start-up; a bad line stops it naming the line."),
    key("auth.ban_file", "a path to a TOML file of [[ban]] entries", "each entry has clientid, username or address", NO_DEFAULT,
        "Banned clients: a TOML file of [[ban]] entries, each with one of clientid, username or address (an IP or a CIDR network such as 203.0.113.0/24), an optional until (Unix seconds) and reason. A banned client gets CONNACK 0x8A (v3 0x05) before its password is checked. Read at start-up; a bad entry stops it naming the entry."),
    key("log.level", "a level (off, error, warn, info, debug, trace) or a filter like \"info,broker=debug\"", "set it to e.g. \"info\"", "\"info\"",
        "Log level, or a tracing EnvFilter string for levels per module. RUST_LOG overrides it."),
    key("log.format", "\"text\" or \"json\"", "set it to e.g. \"text\"", "\"text\"",
        "Log line format on stderr: human text or one JSON object per line."),
    key("sys.interval", "0..=86400 seconds", "0 disables $SYS; e.g. 10", "10",
        "Seconds between `$SYS/...` statistics updates; 0 disables `$SYS`."),
    key("sys.client_events", "true or false", "set it to true or false", "false",
        "Publish a JSON event to `$SYS/brokers/<node>/clients/<client id>/connected` and `.../disconnected` whenever a client connects or disconnects (EMQX-style; off by default)."),
    key("sys.node", "a string", "set it to e.g. \"ringmq@host1\"", "\"\"",
        "Node name used in the client event topics; empty means the host name."),
    key("shared.strategy", "one of \"round_robin\", \"random\", \"sticky\", \"hash\"", "set it to e.g. \"round_robin\"", "\"round_robin\"",
        "How a shared subscription group picks the member for each message: round_robin (members in turn), random, sticky (the same member until it leaves or goes offline), hash (by the publisher's client id)."),
];

/// What a whole table must be, for a value of the wrong type where a table belongs.
const TABLE_SPECS: &[KeySpec] = &[
    key(
        "listeners",
        "an array of tables, written [[listeners]]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "limits",
        "a table, written [limits]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "session",
        "a table, written [session]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "retained",
        "a table, written [retained]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "auth",
        "a table, written [auth]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "log",
        "a table, written [log]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "sys",
        "a table, written [sys]",
        "see docs/configuration.md",
        "",
        "",
    ),
    key(
        "shared",
        "a table, written [shared]",
        "see docs/configuration.md",
        "",
        "",
    ),
];

/// The spec of a key; `listeners[3].bind` and `listeners.bind` both find `listeners.bind`.
pub fn spec(key: &str) -> Option<&'static KeySpec> {
    let plain = strip_indices(key);
    KEYS.iter().chain(TABLE_SPECS).find(|s| s.key == plain)
}

/// The standard message for a bad value: `limits.max_inflight = 0: must be 1..=65535 (set it
/// to e.g. 32)`. `value` is TOML text.
pub fn bad_value(key: &str, value: &str) -> Problem {
    let message = match spec(key) {
        Some(s) => format!("{key} = {value}: must be {} ({})", s.expect, s.hint),
        None => format!("{key} = {value}: not a valid value"),
    };
    Problem {
        key: key.to_owned(),
        message,
    }
}

/// A problem of any other shape, for checks that need their own sentence.
pub fn problem(key: &str, value: &str, what: &str) -> Problem {
    Problem {
        key: key.to_owned(),
        message: format!("{key} = {value}: {what}"),
    }
}

/// Every key of `root` that the schema does not know, each naming the valid keys of its table.
pub fn unknown_keys(root: &toml::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    for (name, value) in root {
        if !TOP_KEYS.contains(&name.as_str()) {
            out.push(unknown_top(name));
        } else if TABLES.contains(&name.as_str()) {
            if let toml::Value::Table(t) = value {
                check_table(t, name, name, &format!("[{name}]"), &mut out);
            }
        } else if name == ARRAY_TABLE {
            if let toml::Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        let at = format!("{name}[{i}]");
                        check_table(t, name, &at, "[[listeners]]", &mut out);
                    }
                }
            }
        }
    }
    out
}

fn check_table(t: &toml::Table, table: &str, at: &str, label: &str, out: &mut Vec<Problem>) {
    let valid = keys_of(table);
    for name in t.keys() {
        if valid.contains(&name.as_str()) {
            continue;
        }
        let guess = closest(name, &valid)
            .map(|g| format!(" (did you mean {g}?)"))
            .unwrap_or_default();
        out.push(Problem {
            key: format!("{at}.{name}"),
            message: format!(
                "unknown key {at}.{name}{guess}; valid keys in {label}: {}",
                valid.join(", ")
            ),
        });
    }
}

fn unknown_top(name: &str) -> Problem {
    // A table key written above its header (or under no header) is the usual cause.
    let home = KEYS
        .iter()
        .find(|s| s.key.rsplit_once('.').is_some_and(|(_, leaf)| leaf == name));
    let guess = match (home, closest(name, TOP_KEYS)) {
        (Some(s), _) => {
            let table = s.key.split_once('.').map_or("", |(t, _)| t);
            let header = if table == ARRAY_TABLE {
                "[[listeners]]".to_owned()
            } else {
                format!("[{table}]")
            };
            format!(" (did you mean {}? it belongs under {header})", s.key)
        }
        (None, Some(g)) => format!(" (did you mean {g}?)"),
        (None, None) => String::new(),
    };
    Problem {
        key: name.to_owned(),
        message: format!(
            "unknown key {name}{guess}; valid top-level keys: {}",
            TOP_KEYS.join(", ")
        ),
    }
}

/// The leaf names under `table`, in schema order.
pub fn keys_of(table: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter_map(|s| {
            s.key
                .split_once('.')
                .filter(|(t, _)| *t == table)
                .map(|(_, leaf)| leaf)
        })
        .collect()
}

/// The valid key nearest to a misspelling, when it is near enough to be the likely intent.
fn closest(name: &str, valid: &[&'static str]) -> Option<&'static str> {
    let limit = (name.len() / 3).clamp(1, 3);
    valid
        .iter()
        .map(|v| (edit_distance(name, v), *v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost 1, so `levle` is 1 away from `level`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The message for a value serde refused (wrong type, out of the type's range, not an
/// address, unknown enum variant) at `path`, showing the value as written.
pub fn type_problem(root: &toml::Table, path: &Path, serde_message: &str) -> Problem {
    let key = path.to_string();
    match (lookup(root, path), spec(&key)) {
        (Some(value), Some(_)) => bad_value(&key, &value.to_string()),
        (Some(value), None) => problem(&key, &value.to_string(), serde_message),
        (None, _) => Problem {
            message: format!("{key}: {serde_message}"),
            key,
        },
    }
}

fn lookup<'a>(root: &'a toml::Table, path: &Path) -> Option<&'a toml::Value> {
    let mut segments = path.iter();
    let first = match segments.next()? {
        Segment::Map { key } => root.get(key)?,
        _ => return None,
    };
    segments.try_fold(first, |v, seg| match seg {
        Segment::Map { key } => v.as_table()?.get(key),
        Segment::Seq { index } => v.as_array()?.get(*index),
        _ => None,
    })
}

fn strip_indices(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut depth = 0usize;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}
