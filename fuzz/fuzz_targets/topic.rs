//! Fuzz target: topic validation and matching invariants.
//!
//! The input is split at its first `\n` into a filter and a name (lossy UTF-8). Asserts that
//! `matches` agrees with a level-count oracle written from the spec (§4.7), that a valid name
//! is a valid filter matching itself, and that `parse_shared` returns parts that validate and
//! rebuild the input.

#![no_main]

use codec::topic::{matches, parse_shared, validate_filter, validate_name};
use libfuzzer_sys::fuzz_target;

fn oracle(filter: &str, name: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    if name.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let level_ok = |(fl, nl): (&&str, &&str)| *fl == "+" || fl == nl;
    match f.split_last() {
        Some((&"#", prefix)) => n.len() >= prefix.len() && prefix.iter().zip(&n).all(level_ok),
        _ => f.len() == n.len() && f.iter().zip(&n).all(level_ok),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (filter, name) = text.split_once('\n').unwrap_or((&text, ""));

    let filter_ok = validate_filter(filter).is_ok();
    let name_ok = validate_name(name).is_ok();
    if filter_ok && name_ok {
        assert_eq!(
            matches(filter, name),
            oracle(filter, name),
            "{filter:?} vs {name:?}"
        );
    }
    if name_ok {
        assert!(
            validate_filter(name).is_ok(),
            "valid name {name:?} is not a valid filter"
        );
        assert!(matches(name, name), "{name:?} does not match itself");
        assert!(!name.contains(['+', '#']));
    }
    if filter_ok {
        assert!(!filter.is_empty());
        for level in filter.split('/') {
            assert!(
                level == "+" || level == "#" || !level.contains(['+', '#']),
                "{filter:?}"
            );
        }
        assert!(
            !filter.split('/').rev().skip(1).any(|l| l == "#"),
            "# not last in {filter:?}"
        );
    }
    match parse_shared(filter) {
        Ok(Some((group, inner))) => {
            assert!(
                !group.is_empty() && !group.contains(['/', '+', '#']),
                "group {group:?}"
            );
            assert!(validate_filter(inner).is_ok(), "inner {inner:?}");
            assert_eq!(format!("$share/{group}/{inner}"), filter);
        }
        Ok(None) => assert!(!filter.starts_with("$share/")),
        Err(_) => assert!(filter.starts_with("$share/")),
    }
});
