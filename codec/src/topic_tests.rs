//! Unit tests for `topic.rs`, most of them the examples of MQTT 5.0 §4.7 and §4.8.2.

use super::*;

#[test]
fn names_valid() {
    for name in [
        "sport/tennis/player1",
        "/",
        "/finance",
        "finance/",
        "$SYS/broker",
        "Accounts payable",
        "a//b",
    ] {
        assert_eq!(validate_name(name), Ok(()), "{name}");
    }
}

#[test]
fn names_invalid() {
    assert_eq!(validate_name(""), Err(TopicError::EmptyName));
    assert_eq!(validate_name("sport/+"), Err(TopicError::WildcardInName));
    assert_eq!(validate_name("sport/#"), Err(TopicError::WildcardInName));
    assert_eq!(validate_name("a+b"), Err(TopicError::WildcardInName));
    assert_eq!(validate_name("a\0b"), Err(TopicError::NullCharacter));
    let long = "a".repeat(65_536);
    assert_eq!(validate_name(&long), Err(TopicError::TooLong));
    assert_eq!(validate_name(&long[1..]), Ok(()));
}

#[test]
fn filters_from_section_4_7_1() {
    // §4.7.1.2: "#", "sport/tennis/#" valid; "sport/tennis#", "sport/tennis/#/ranking" not.
    assert_eq!(validate_filter("#"), Ok(()));
    assert_eq!(validate_filter("sport/tennis/#"), Ok(()));
    assert_eq!(
        validate_filter("sport/tennis#"),
        Err(TopicError::HashNotLast)
    );
    assert_eq!(
        validate_filter("sport/tennis/#/ranking"),
        Err(TopicError::HashNotLast)
    );
    // §4.7.1.3: "+", "+/tennis/#", "sport/+/player1" valid; "sport+" not.
    assert_eq!(validate_filter("+"), Ok(()));
    assert_eq!(validate_filter("+/tennis/#"), Ok(()));
    assert_eq!(validate_filter("sport/+/player1"), Ok(()));
    assert_eq!(
        validate_filter("sport+"),
        Err(TopicError::PlusNotWholeLevel)
    );
}

#[test]
fn filters_edge_cases() {
    assert_eq!(validate_filter(""), Err(TopicError::EmptyFilter));
    assert_eq!(validate_filter("/"), Ok(()));
    assert_eq!(validate_filter("+/+"), Ok(()));
    assert_eq!(validate_filter("/#"), Ok(()));
    assert_eq!(validate_filter("##"), Err(TopicError::HashNotLast));
    assert_eq!(validate_filter("#/"), Err(TopicError::HashNotLast));
    assert_eq!(validate_filter("a/#b"), Err(TopicError::HashNotLast));
    assert_eq!(validate_filter("++"), Err(TopicError::PlusNotWholeLevel));
    assert_eq!(
        validate_filter("a/b+/c"),
        Err(TopicError::PlusNotWholeLevel)
    );
    assert_eq!(validate_filter("a/\0"), Err(TopicError::NullCharacter));
    assert_eq!(
        validate_filter(&"a".repeat(65_536)),
        Err(TopicError::TooLong)
    );
}

#[test]
fn shared_subscriptions_section_4_8_2() {
    assert_eq!(parse_shared("sport/#"), Ok(None));
    assert_eq!(parse_shared("$share"), Ok(None));
    assert_eq!(parse_shared("$shared/g/x"), Ok(None));
    assert_eq!(
        parse_shared("$share/consumer1/sport/tennis/+"),
        Ok(Some(("consumer1", "sport/tennis/+")))
    );
    assert_eq!(
        parse_shared("$share/consumer2/sport/tennis/+"),
        Ok(Some(("consumer2", "sport/tennis/+")))
    );
    assert_eq!(
        parse_shared("$share/g//finance"),
        Ok(Some(("g", "/finance")))
    );
    assert_eq!(parse_shared("$share/g/#"), Ok(Some(("g", "#"))));
    assert_eq!(parse_shared("$share/"), Err(TopicError::SharedGroupEmpty));
    assert_eq!(parse_shared("$share//x"), Err(TopicError::SharedGroupEmpty));
    assert_eq!(
        parse_shared("$share/g+/x"),
        Err(TopicError::SharedGroupInvalid)
    );
    assert_eq!(
        parse_shared("$share/#/x"),
        Err(TopicError::SharedGroupInvalid)
    );
    assert_eq!(
        parse_shared("$share/g"),
        Err(TopicError::SharedFilterMissing)
    );
    assert_eq!(
        parse_shared("$share/g/"),
        Err(TopicError::SharedFilterMissing)
    );
    assert_eq!(parse_shared("$share/g/a#"), Err(TopicError::HashNotLast));
    assert_eq!(validate_subscription("$share/g/a/+"), Ok(true));
    assert_eq!(validate_subscription("a/+"), Ok(false));
    assert_eq!(
        validate_subscription("a+"),
        Err(TopicError::PlusNotWholeLevel)
    );
    assert_eq!(
        validate_subscription("$share/g"),
        Err(TopicError::SharedFilterMissing)
    );
}

#[test]
fn wildcard_detection() {
    assert!(is_wildcard("a/+/b"));
    assert!(is_wildcard("#"));
    assert!(!is_wildcard("a/b"));
    assert!(!is_wildcard("$SYS/x"));
}

#[test]
fn multi_level_wildcard_section_4_7_1_2() {
    let f = "sport/tennis/player1/#";
    assert!(matches(f, "sport/tennis/player1"));
    assert!(matches(f, "sport/tennis/player1/ranking"));
    assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
    assert!(!matches(f, "sport/tennis/player2"));
    // "sport/#" also matches the singular "sport", since # includes the parent level.
    assert!(matches("sport/#", "sport"));
    assert!(matches("#", "sport/tennis"));
    assert!(matches("#", "/"));
}

#[test]
fn single_level_wildcard_section_4_7_1_3() {
    let f = "sport/tennis/+";
    assert!(matches(f, "sport/tennis/player1"));
    assert!(matches(f, "sport/tennis/player2"));
    assert!(!matches(f, "sport/tennis/player1/ranking"));
    // "sport/+" does not match "sport" but does match "sport/".
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    // "+/+" and "/+" match "/finance"; "+" does not.
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(matches("+/tennis/#", "sport/tennis/player1"));
    assert!(matches("a/+/c", "a//c"));
}

#[test]
fn dollar_topics_section_4_7_2() {
    // A subscription to "#" receives no message published to a topic starting with '$'.
    assert!(!matches("#", "$SYS/monitor/Clients"));
    // "+/monitor/Clients" does not match "$SYS/monitor/Clients".
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(matches("$SYS", "$SYS"));
    // Only the first level is special: "a/+" still matches "a/$b".
    assert!(matches("a/+", "a/$b"));
}

#[test]
fn exact_topics_section_4_7_3() {
    // Case sensitive, spaces allowed, a leading '/' makes a distinct topic.
    assert!(!matches("ACCOUNTS", "Accounts"));
    assert!(matches("Accounts payable", "Accounts payable"));
    assert!(!matches("finance", "/finance"));
    assert!(!matches("/finance", "finance"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(!matches("a/b/c", "a/b"));
    assert!(!matches("a/b/#", "a"));
}

#[test]
fn errors_map_to_reason_codes() {
    assert_eq!(
        TopicError::WildcardInName.reason_code(),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        TopicError::EmptyName.reason_code(),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        TopicError::HashNotLast.reason_code(),
        ReasonCode::TopicFilterInvalid
    );
    assert_eq!(
        TopicError::SharedGroupInvalid.reason_code(),
        ReasonCode::TopicFilterInvalid
    );
    assert_eq!(
        TopicError::HashNotLast.to_string(),
        "'#' is not alone in the last level of the filter [MQTT-4.7.1-1]"
    );
}
