//! Property tests of the topic helpers: `matches` against an independent oracle, and
//! `validate_name` / `validate_filter` / `parse_shared` on generated valid and invalid topics.
//!
//! The oracle in this file is written from the spec's wording (§4.7.1, §4.7.2), by level
//! counts rather than the codec's walk, so a shared mistake is unlikely. Shrunk failures are
//! kept as named `regression_*` tests at the end.

#[path = "proptest_strategies/mod.rs"]
#[allow(dead_code)]
mod strategies;

use codec::topic::{matches, parse_shared, validate_filter, validate_name, TopicError};
use proptest::collection::vec;
use proptest::prelude::*;
use strategies::{topic_filter_string, topic_name_string};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Spec oracle: a filter ending in `#` matches every name whose first levels match the
/// levels before `#` (the parent level included); any other filter matches names with the
/// same number of levels. `+` matches any one level, even an empty one. Names starting with
/// `$` are not matched by a filter whose first level is a wildcard [MQTT-4.7.2-1].
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

/// Topics over a tiny alphabet so that random filters and names actually meet.
fn small_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["a", "b", "", "$a", "$SYS"][..])
}

fn small_name() -> impl Strategy<Value = String> {
    vec(small_level(), 1..5)
        .prop_map(|l| l.join("/"))
        .prop_filter("empty", |s| !s.is_empty())
}

fn small_filter() -> impl Strategy<Value = String> {
    let lvl = prop::sample::select(&["a", "b", "", "+", "$a", "$SYS"][..]);
    (vec(lvl, 0..5), any::<bool>()).prop_map(|(mut l, hash)| {
        if hash || l.is_empty() {
            l.push("#");
        }
        l.join("/")
    })
}

/// A name the filter must match, built by filling its wildcards.
fn name_matching(filter: &str, fills: &[&str], extra: &[&str]) -> String {
    let mut out = Vec::new();
    for (i, level) in filter.split('/').enumerate() {
        match level {
            "+" => out.push(fills[i % fills.len()]),
            "#" => out.extend(extra),
            l => out.push(l),
        }
    }
    out.join("/")
}

/// Plain levels for building invalid filters: no `#`, `+` or `/`.
fn plain_level() -> impl Strategy<Value = String> {
    "[a-z0-9$ ]{0,4}"
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn matches_agrees_with_oracle(filter in small_filter(), name in small_name()) {
        prop_assert_eq!(matches(&filter, &name), oracle(&filter, &name), "filter {:?} name {:?}", filter, name);
    }

    #[test]
    fn matches_agrees_with_oracle_on_wide_alphabet(filter in topic_filter_string(), name in topic_name_string()) {
        prop_assert_eq!(matches(&filter, &name), oracle(&filter, &name));
    }

    /// Filling a filter's wildcards with ordinary levels always yields a matching name.
    #[test]
    fn filled_filter_matches(
        filter in topic_filter_string(),
        fills in vec("[a-z]{0,3}", 1..4),
        extra in vec("[a-z]{0,3}", 0..3),
    ) {
        let fills: Vec<&str> = fills.iter().map(String::as_str).collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let name = name_matching(&filter, &fills, &extra);
        prop_assume!(!name.is_empty() && !name.starts_with('$'));
        prop_assert!(matches(&filter, &name), "filter {:?} name {:?}", filter, name);
    }

    /// A name used as a filter matches exactly itself.
    #[test]
    fn name_as_filter_matches_itself(name in topic_name_string(), other in topic_name_string()) {
        prop_assert!(validate_filter(&name).is_ok());
        prop_assert!(matches(&name, &name));
        prop_assert_eq!(matches(&name, &other), name == other);
    }

    #[test]
    fn generated_names_and_filters_are_valid(name in topic_name_string(), filter in topic_filter_string()) {
        prop_assert_eq!(validate_name(&name), Ok(()));
        prop_assert_eq!(validate_filter(&filter), Ok(()));
        prop_assert_eq!(parse_shared(&filter), Ok(None));
    }

    /// Any `+` or `#` in a name is refused.
    #[test]
    fn wildcard_in_name_is_refused(
        name in topic_name_string(),
        at in any::<prop::sample::Index>(),
        wc in prop_oneof![Just('+'), Just('#')],
    ) {
        let mut chars: Vec<char> = name.chars().collect();
        chars.insert(at.index(chars.len() + 1), wc);
        let bad: String = chars.into_iter().collect();
        prop_assert_eq!(validate_name(&bad), Err(TopicError::WildcardInName));
    }

    /// `#` followed by more levels is refused with HashNotLast.
    #[test]
    fn hash_not_last_is_refused(
        before in vec(plain_level(), 0..3),
        after in vec(plain_level(), 1..3),
        end_hash in any::<bool>(),
    ) {
        let mut levels = before;
        levels.push("#".into());
        levels.extend(after);
        if end_hash { levels.push("#".into()); }
        let filter = levels.join("/");
        prop_assert_eq!(validate_filter(&filter), Err(TopicError::HashNotLast), "{:?}", filter);
    }

    /// A level that holds a wildcard and anything else is refused with the matching error.
    #[test]
    fn partial_level_wildcard_is_refused(
        before in vec(plain_level(), 0..3),
        (pre, post) in ("[a-z]{0,2}", "[a-z]{0,2}").prop_filter("whole level", |(a, b)| !(a.is_empty() && b.is_empty())),
        wc in prop_oneof![Just('+'), Just('#')],
        last in any::<bool>(),
    ) {
        let mut levels = before;
        levels.push(format!("{pre}{wc}{post}"));
        if !last { levels.push("x".into()); }
        let filter = levels.join("/");
        let expected = if wc == '#' { TopicError::HashNotLast } else { TopicError::PlusNotWholeLevel };
        prop_assert_eq!(validate_filter(&filter), Err(expected), "{:?}", filter);
    }

    /// `$share/{group}/{filter}` splits into its parts; a group with a wildcard is refused.
    #[test]
    fn shared_subscriptions_parse(
        group in "[a-zA-Z0-9_$-]{1,6}",
        filter in topic_filter_string(),
        bad in prop_oneof![Just('+'), Just('#')],
    ) {
        let shared = format!("$share/{group}/{filter}");
        prop_assert_eq!(parse_shared(&shared), Ok(Some((group.as_str(), filter.as_str()))));
        let bad_group = format!("$share/{group}{bad}/{filter}");
        prop_assert_eq!(parse_shared(&bad_group), Err(TopicError::SharedGroupInvalid));
        let no_group = format!("$share//{filter}");
        prop_assert_eq!(parse_shared(&no_group), Err(TopicError::SharedGroupEmpty));
    }
}
