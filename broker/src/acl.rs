//! Access rules in Mosquitto's `acl_file` format, checked on each shard for every PUBLISH
//! (write) and SUBSCRIBE (read) from rules read once at start (shared read-only, no lock, no
//! allocation per check).
//!
//! ```text
//! topic read sensors/#          # before any `user` line: anonymous clients
//! user alice
//! topic readwrite alice/#       # alice's own rules
//! topic deny alice/secret
//! pattern write devices/%c/up   # everyone: %c the client id, %u the username
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default) or `deny`. A client's rules are its
//! user's `topic` lines (or the anonymous ones) and every `pattern` line. A matching `deny`
//! refuses; otherwise a matching grant allows; nothing matching refuses. A SUBSCRIBE filter
//! is granted when a read rule covers all of it (`a/+` under `a/#`) and no `deny` rule
//! could match a topic it receives: a subscription that would reach a denied topic is
//! refused whole (Mosquitto grants it and withholds those messages one by one), so retained
//! and live messages alike only reach clients allowed to read them. Wildcards at the first
//! level do not match `$` topics (`$SYS/...`), as in MQTT.

use ahash::AHashMap;
use shard::{Action, Authorizer, ClientInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// One level of a rule's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Lit(String),
    Plus,
    Hash,
    /// A `pattern` level with `%u` / `%c` in it.
    Sub(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    User,
    Client,
}

#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    levels: Vec<Level>,
}

/// Rules indexed by their first level, so a check looks only at the rules that can match
/// its topic's first level (and those starting with a wildcard or a `%` pattern).
#[derive(Debug, Default)]
struct RuleSet {
    by_first: AHashMap<String, Vec<Rule>>,
    wild: Vec<Rule>,
    /// Every rule, for filters that start with a wildcard.
    all: Vec<Rule>,
}

impl RuleSet {
    fn push(&mut self, rule: Rule) {
        self.all.push(rule.clone());
        match rule.levels.first() {
            Some(Level::Lit(first)) => self.by_first.entry(first.clone()).or_default().push(rule),
            _ => self.wild.push(rule),
        }
    }

    /// The rules that can concern topic or filter `t` (every rule when `t` starts with a
    /// wildcard).
    fn for_topic(&self, t: &str) -> impl Iterator<Item = &Rule> {
        let first = t.split('/').next().unwrap_or("");
        let (a, b): (&[Rule], &[Rule]) = if first == "+" || first == "#" {
            (&self.all, &[])
        } else {
            let lit = self.by_first.get(first).map(Vec::as_slice).unwrap_or(&[]);
            (lit, &self.wild)
        };
        a.iter().chain(b)
    }
}

/// The rules of an ACL file.
#[derive(Debug, Default)]
pub struct AclFile {
    anonymous: RuleSet,
    users: AHashMap<String, RuleSet>,
    patterns: RuleSet,
}

impl AclFile {
    pub fn parse(text: &str) -> Result<AclFile, String> {
        let mut f = AclFile::default();
        let mut user: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: &str| format!("line {}: {what}", n + 1);
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "user" if !rest.is_empty() => user = Some(rest.to_owned()),
                "topic" | "pattern" => {
                    let (access, filter) = match rest.split_once(char::is_whitespace) {
                        Some((a, t)) if access_of(a).is_some() => (access_of(a), t.trim()),
                        _ => (None, rest),
                    };
                    if filter.is_empty() {
                        return Err(err(&format!("{word} without a topic")));
                    }
                    let rule = Rule {
                        access: access.unwrap_or(Access::ReadWrite),
                        levels: levels(filter, word == "pattern")
                            .map_err(|e| err(&format!("{filter:?}: {e}")))?,
                    };
                    match (word, &user) {
                        ("pattern", _) => f.patterns.push(rule),
                        (_, Some(u)) => f.users.entry(u.clone()).or_default().push(rule),
                        (_, None) => f.anonymous.push(rule),
                    }
                }
                _ => {
                    return Err(err(&format!(
                        "expected `user NAME`, `topic [read|write|readwrite|deny] TOPIC` or \
                         `pattern [read|write|readwrite|deny] TOPIC`, found {line:?}"
                    )))
                }
            }
        }
        Ok(f)
    }

    /// The rules that apply to `client` and can concern `topic`.
    fn rules<'a>(&'a self, client: &ClientInfo<'_>, topic: &str) -> impl Iterator<Item = &'a Rule> {
        static EMPTY: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        let own = match client.username {
            Some(u) => self
                .users
                .get(u)
                .unwrap_or_else(|| EMPTY.get_or_init(RuleSet::default)),
            None => &self.anonymous,
        };
        own.for_topic(topic).chain(self.patterns.for_topic(topic))
    }
}

fn access_of(s: &str) -> Option<Access> {
    match s {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    }
}

fn levels(filter: &str, pattern: bool) -> Result<Vec<Level>, String> {
    let parts: Vec<&str> = filter.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        out.push(match *p {
            "#" if i + 1 == parts.len() => Level::Hash,
            "#" => return Err("# must be the last level".into()),
            "+" => Level::Plus,
            _ if p.contains(['+', '#']) => return Err("+ and # must be whole levels".into()),
            _ if pattern && (p.contains("%u") || p.contains("%c")) => Level::Sub(pieces(p)),
            _ => Level::Lit((*p).to_owned()),
        });
    }
    Ok(out)
}

fn pieces(level: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = level;
    while let Some(i) = rest.find(['%']) {
        let token = match &rest[i..] {
            t if t.starts_with("%u") => Some(Piece::User),
            t if t.starts_with("%c") => Some(Piece::Client),
            _ => None,
        };
        match token {
            Some(t) => {
                if i > 0 {
                    out.push(Piece::Lit(rest[..i].to_owned()));
                }
                out.push(t);
                rest = &rest[i + 2..];
            }
            None => {
                out.push(Piece::Lit(rest[..=i].to_owned()));
                rest = &rest[i + 1..];
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_owned()));
    }
    out
}

/// Whether topic level `t` is what `pieces` spell for `client`. A username or client id
/// that holds `/`, `+` or `#` never matches (it could reach other clients' levels).
fn sub_matches(pieces: &[Piece], t: &str, client: &ClientInfo<'_>) -> bool {
    let mut rest = t;
    for p in pieces {
        let want = match p {
            Piece::Lit(s) => s.as_str(),
            Piece::User => match client.username {
                Some(u) if !u.contains(['/', '+', '#']) => u,
                _ => return false,
            },
            Piece::Client if !client.client_id.contains(['/', '+', '#']) => client.client_id,
            Piece::Client => return false,
        };
        match rest.strip_prefix(want) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether rule filter `r` matches topic name `topic` (no wildcards in it).
fn matches(r: &[Level], topic: &str, client: &ClientInfo<'_>) -> bool {
    let mut t = topic.split('/');
    for (i, l) in r.iter().enumerate() {
        if i == 0 && topic.starts_with('$') && matches!(l, Level::Plus | Level::Hash) {
            return false;
        }
        match l {
            Level::Hash => return true,
            _ => {
                let Some(tl) = t.next() else { return false };
                let ok = match l {
                    Level::Lit(s) => s == tl,
                    Level::Plus => true,
                    Level::Sub(p) => sub_matches(p, tl, client),
                    Level::Hash => true,
                };
                if !ok {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// Whether every topic subscription filter `f` matches is matched by rule filter `r`.
fn covers(r: &[Level], f: &str, client: &ClientInfo<'_>) -> bool {
    let mut fl = f.split('/');
    for (i, l) in r.iter().enumerate() {
        if i == 0 && f.starts_with('$') && matches!(l, Level::Plus | Level::Hash) {
            return false;
        }
        if *l == Level::Hash {
            return true;
        }
        let Some(x) = fl.next() else { return false };
        let ok = match l {
            Level::Plus => x != "#",
            Level::Lit(s) => x == s,
            Level::Sub(p) => sub_matches(p, x, client),
            Level::Hash => true,
        };
        if !ok {
            return false;
        }
    }
    fl.next().is_none()
}

/// Whether some topic matches both rule filter `r` and subscription filter `f`.
fn overlaps(r: &[Level], f: &str, client: &ClientInfo<'_>) -> bool {
    let fv: Vec<&str> = f.split('/').collect();
    let dollar = |s: &str| s.starts_with('$');
    for (i, l) in r.iter().enumerate() {
        let x = fv.get(i).copied();
        if i == 0 {
            // Wildcards at the first level do not reach `$` topics.
            match (l, x) {
                (Level::Plus | Level::Hash, Some(x)) if dollar(x) => return false,
                (Level::Lit(s), Some("+" | "#")) if dollar(s) => return false,
                _ => {}
            }
        }
        match (l, x) {
            (Level::Hash, _) | (_, Some("#")) => return true,
            (_, None) => return false,
            (Level::Plus, Some(_)) | (_, Some("+")) => {}
            (Level::Lit(s), Some(x)) if s == x => {}
            (Level::Sub(p), Some(x)) if sub_matches(p, x, client) => {}
            _ => return false,
        }
    }
    match fv.get(r.len()) {
        None => true,
        Some(&"#") => true,
        Some(_) => false,
    }
}

/// One shard's check over the shared rules.
pub struct AclAuthorizer(pub crate::authn::Shared<AclFile>);

impl Authorizer for AclAuthorizer {
    fn allow(&self, client: &ClientInfo<'_>, action: Action, topic: &str) -> bool {
        let mut granted = false;
        let acl = self.0.load();
        for rule in acl.file.rules(client, topic) {
            match action {
                Action::Publish => {
                    if !matches(&rule.levels, topic, client) {
                        continue;
                    }
                    match rule.access {
                        Access::Deny => return false,
                        Access::Write | Access::ReadWrite => granted = true,
                        Access::Read => {}
                    }
                }
                Action::Subscribe => match rule.access {
                    Access::Deny if overlaps(&rule.levels, topic, client) => return false,
                    Access::Read | Access::ReadWrite if covers(&rule.levels, topic, client) => {
                        granted = true
                    }
                    _ => {}
                },
            }
        }
        granted
    }
}

#[cfg(test)]
mod tests;
