//! Rules of the ACL file format and the checks made with them.

use super::*;

fn who<'a>(user: Option<&'a str>, id: &'a str) -> ClientInfo<'a> {
    ClientInfo {
        client_id: id,
        username: user,
    }
}

const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic write shared/in

user bob
topic read alice/+/status

pattern write devices/%c/up
pattern read users/%u/#
pattern read dev-%c-x/inbox
";

fn authz(f: AclFile) -> AclAuthorizer {
    AclAuthorizer(crate::authn::shared(f))
}

fn acl() -> AclAuthorizer {
    authz(AclFile::parse(FILE).unwrap())
}

#[test]
fn publishes_need_a_write_grant_and_no_deny() {
    let a = acl();
    let alice = who(Some("alice"), "a1");
    assert!(a.allow(&alice, Action::Publish, "alice/x/y"));
    assert!(
        a.allow(&alice, Action::Publish, "alice"),
        "# matches its parent"
    );
    assert!(
        !a.allow(&alice, Action::Publish, "alice/secret"),
        "deny wins"
    );
    assert!(a.allow(&alice, Action::Publish, "shared/in"));
    assert!(
        !a.allow(&alice, Action::Publish, "public/x"),
        "anonymous rules are not hers"
    );
    assert!(a.allow(&alice, Action::Publish, "devices/a1/up"), "%c");
    assert!(!a.allow(&alice, Action::Publish, "devices/a2/up"));
    let anon = who(None, "n1");
    assert!(!a.allow(&anon, Action::Publish, "public/x"), "read only");
    assert!(!a.allow(&who(Some("carol"), "c"), Action::Publish, "alice/x"));
}

#[test]
fn subscriptions_must_be_covered_and_reach_no_denied_topic() {
    let a = acl();
    let alice = who(Some("alice"), "a1");
    assert!(a.allow(&alice, Action::Subscribe, "alice/+/status"));
    assert!(
        !a.allow(&alice, Action::Subscribe, "alice/#"),
        "would receive alice/secret"
    );
    assert!(
        !a.allow(&alice, Action::Subscribe, "alice/+"),
        "alice/secret too"
    );
    assert!(a.allow(&alice, Action::Subscribe, "alice/x/#"));
    assert!(
        !a.allow(&alice, Action::Subscribe, "shared/in"),
        "write only"
    );
    let bob = who(Some("bob"), "b1");
    assert!(a.allow(&bob, Action::Subscribe, "alice/+/status"));
    assert!(a.allow(&bob, Action::Subscribe, "alice/kitchen/status"));
    assert!(
        !a.allow(&bob, Action::Subscribe, "alice/#"),
        "wider than granted"
    );
    assert!(!a.allow(&bob, Action::Subscribe, "alice/+/+"));
    assert!(a.allow(&bob, Action::Subscribe, "users/bob/#"), "%u");
    assert!(!a.allow(&bob, Action::Subscribe, "users/+/#"));
    assert!(
        a.allow(&bob, Action::Subscribe, "dev-b1-x/inbox"),
        "%c inside a level"
    );
    assert!(!a.allow(&bob, Action::Subscribe, "dev-b2-x/inbox"));
    assert!(
        !a.allow(&bob, Action::Subscribe, "+/kitchen/status"),
        "wider than alice/..."
    );
    let f = AclFile::parse("topic read #\ntopic deny alice/secret\n").unwrap();
    let wide = authz(f);
    assert!(
        !wide.allow(&who(None, "x"), Action::Subscribe, "+/secret"),
        "reaches the deny"
    );
    assert!(wide.allow(&who(None, "x"), Action::Subscribe, "+/public"));
    let anon = who(None, "n1");
    assert!(a.allow(&anon, Action::Subscribe, "public/#"));
    assert!(
        !a.allow(&anon, Action::Subscribe, "users/+/x"),
        "no %u for anonymous"
    );
}

#[test]
fn wildcards_do_not_reach_dollar_topics_and_names_cannot_climb_levels() {
    let f = AclFile::parse("topic read #\ntopic deny $SYS/#\npattern readwrite home/%u\n").unwrap();
    let a = authz(f);
    let anon = who(None, "x");
    assert!(
        a.allow(&anon, Action::Subscribe, "#"),
        "the deny on $SYS does not touch #"
    );
    assert!(!a.allow(&anon, Action::Subscribe, "$SYS/broker/#"));
    let f = AclFile::parse("topic read #\n").unwrap();
    let a = authz(f);
    assert!(
        !a.allow(&anon, Action::Subscribe, "$SYS/#"),
        "# does not cover $SYS"
    );
    let f = AclFile::parse("pattern readwrite home/%u\n").unwrap();
    let a = authz(f);
    assert!(a.allow(&who(Some("eve"), "e"), Action::Publish, "home/eve"));
    assert!(!a.allow(&who(Some("eve/x"), "e"), Action::Publish, "home/eve/x"));
    assert!(!a.allow(&who(Some("+"), "e"), Action::Subscribe, "home/+"));
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    for (text, want) in [
        ("topic\n", "line 1: topic without a topic"),
        ("user alice\nhello world\n", "line 2: expected `user NAME`"),
        (
            "topic read a/#/b\n",
            "line 1: \"a/#/b\": # must be the last level",
        ),
        ("topic read a/b+\n", "+ and # must be whole levels"),
    ] {
        let e = AclFile::parse(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    // A topic literally named "read" is a topic, not an access word, when it stands alone.
    let f = AclFile::parse("topic read\n").unwrap();
    assert!(authz(f).allow(&who(None, "x"), Action::Publish, "read"));
}
