//! Runs the built `ringmq` binary with `--check-config`, `--help` and `--version` and checks
//! exit codes and what it prints: errors name the key and the fix, a good configuration is
//! printed back as TOML, and the open-file limit is raised and checked.

use std::path::PathBuf;
use std::process::{Command, Output};

use broker::config::{Config, ListenerKind};

const BIN: &str = env!("CARGO_BIN_EXE_ringmq");

fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("config-test-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn ringmq(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn bad_value_exits_1_naming_the_key_and_the_fix() {
    let file = config_file(
        "bad-value",
        "[limits]\nmax_inflight = 0\nmax_client_id_len = 10\n",
    );
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "config error: limits.max_inflight = 0: must be 1..=65535 (set it to e.g. 256)\n\
         config error: limits.max_client_id_len = 10: must be 23..=65535 bytes \
         (MQTT requires at least 23 [MQTT-3.1.3-5]; set it to e.g. 256)\n"
    );
    assert_eq!(
        text(&out.stdout),
        "",
        "nothing on stdout when the config is bad"
    );
}

#[test]
fn unknown_key_exits_1_listing_the_valid_keys() {
    let file = config_file("unknown", "[retained]\nmax_mesages = 5\n");
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "config error: unknown key retained.max_mesages (did you mean max_messages?); \
         valid keys in [retained]: max_messages, max_bytes\n"
    );
}

#[test]
fn syntax_error_exits_1_with_line_and_column() {
    let file = config_file("syntax", "shards = 2\n[limits]\nmax_inflight = = 3\n");
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let expected = format!(
        "config error: TOML syntax error in {} at line 3, column 16: ",
        file.display()
    );
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn a_listener_kind_without_its_files_unreadable_files_and_bad_bind_are_explained() {
    let file = config_file(
        "wss",
        "[[listeners]]\nbind = \"0.0.0.0:8084\"\nkind = \"wss\"\n",
    );
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "config error: listeners[0].cert = (missing): a wss listener needs cert and key (PEM \
         files), e.g. cert = \"/etc/ringmq/server.pem\"\n\
         config error: listeners[0].key = (missing): a wss listener needs cert and key (PEM \
         files), e.g. cert = \"/etc/ringmq/server.pem\"\n"
    );
    let file = config_file(
        "tls",
        "[[listeners]]\nbind = \"0.0.0.0:8883\"\nkind = \"tls\"\ncert = \"/nonexistent/s.pem\"\nkey = \"/nonexistent/s.key\"\n",
    );
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "config error: listeners[0].cert = \"/nonexistent/s.pem\": cannot read it: "
        ),
        "{err}"
    );
    let file = config_file("bind", "[[listeners]]\nbind = \"localhost:1883\"\n");
    let out = ringmq(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "config error: listeners[0].bind = \"localhost:1883\": must be IP:PORT, e.g. \"0.0.0.0:1883\" \
         or \"[::]:1883\" (host names are not resolved)\n"
    );
}

#[test]
fn good_config_is_printed_as_toml_with_flags_merged() {
    let file = config_file(
        "good",
        "shards = 3\n[[listeners]]\nbind = \"0.0.0.0:1883\"\n[limits]\nmax_inflight = 16\n",
    );
    let path = file.to_str().unwrap();
    let out = ringmq(&[
        "--check-config",
        "--config",
        path,
        "--shards",
        "4",
        "--listen",
        "127.0.0.1:2883",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!(
        "# ringmq effective configuration (embedded defaults < {path} < flags)\n"
    )));
    let printed = Config::from_toml_str(&stdout).unwrap();
    assert_eq!(printed.shards, 4, "--shards wins over the file");
    assert_eq!(
        printed.listeners.len(),
        1,
        "--listen replaces the file's listeners"
    );
    assert_eq!(printed.listeners[0].bind.to_string(), "127.0.0.1:2883");
    assert_eq!(printed.listeners[0].kind, ListenerKind::Tcp);
    assert_eq!(
        printed.limits.max_inflight, 16,
        "the file wins over the defaults"
    );
    assert_eq!(
        printed.limits.max_packet_size, 1_048_576,
        "defaults fill the rest"
    );
}

#[test]
fn no_config_prints_the_defaults_and_the_resolved_shard_count() {
    let out = ringmq(&["--check-config"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let cpus = std::thread::available_parallelism().unwrap().get().min(256);
    assert!(
        stdout.contains(&format!(
            "# shards = 0 runs {cpus} shards here (one per online CPU)\n"
        )),
        "{stdout}"
    );
    assert_eq!(Config::from_toml_str(&stdout).unwrap(), Config::default());
}

#[test]
fn help_and_version() {
    let out = ringmq(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--config <FILE>",
        "--listen <ADDR:PORT>",
        "--shards <N>",
        "--log-level <LEVEL>",
        "--check-config",
        "--version",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let out = ringmq(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("ringmq {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        &["--shards", "300"][..],
        &["--listen", "nowhere"],
        &["--log-level", "loud"],
    ] {
        let out = ringmq(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(args[0]),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Runs `--check-config` under a shell that first sets the open-file limits.
fn with_nofile(hard: u32, soft: u32, args: &[&str]) -> Output {
    // Soft first: a hard limit below the current soft one is refused (EINVAL).
    let script = format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn soft_open_file_limit_is_raised_to_hard_and_a_low_one_is_warned_about() {
    let file = config_file(
        "nofile",
        "shards = 1\n[limits]\nmax_connections = 1000000\n",
    );
    let path = file.to_str().unwrap();

    let out = with_nofile(300, 256, &["--check-config", "--config", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a low limit warns, it does not fail"
    );
    let err = text(&out.stderr);
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some("ringmq: open-file limit raised from 256 to 300 (hard 300)")
    );
    let warning = lines.next().unwrap_or_default();
    assert!(
        warning.starts_with(
            "warning: the open-file limit 300 allows each shard 256 tables of 300 connections, \
             below its share of limits.max_connections 1000000 over 1 shard(s) + 1024 spare \
             slots"
        ),
        "{err}"
    );
    assert!(warning.contains("LimitNOFILE=3911"), "{warning}");
    assert!(warning.contains("/etc/security/limits.d/"), "{warning}");

    let out = with_nofile(3911, 512, &["--check-config", "--config", path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stderr),
        "ringmq: open-file limit raised from 512 to 3911 (hard 3911)\n"
    );
}
