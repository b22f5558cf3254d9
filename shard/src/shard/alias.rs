//! Topic aliases (§3.3.2.3.4), both directions, per connection.
//!
//! Client → server: the client may name a topic by an alias up to the Topic Alias Maximum we
//! advertised; `InAliases` maps them back. Server → client: when the client's CONNECT allows
//! aliases, `OutAliases` gives each topic an alias (least recently used one replaced when all
//! are taken) and later PUBLISHes of that topic carry only the alias. Both live in the
//! connection, never in the session: aliases end with the network connection
//! [MQTT-3.3.2-7]. Topics are copied in, so a mapping never pins a whole read buffer.

use super::Shard;
use crate::ids::ConnId;
use ahash::AHashMap;
use codec::{ByteStr, Packet, Publish};

/// Aliases the client set up: alias `n` is `topics[n - 1]`.
#[derive(Debug, Default)]
pub(super) struct InAliases {
    topics: Vec<Option<ByteStr>>,
}

impl InAliases {
    /// Maps `alias` (1..=our maximum, checked by the caller) to `topic`, replacing any
    /// earlier mapping (a sender may change a mapping, §3.3.2.3.4).
    pub(super) fn set(&mut self, alias: u16, topic: &str) {
        let i = usize::from(alias.max(1)) - 1;
        if self.topics.len() <= i {
            self.topics.resize(i + 1, None);
        }
        if let Some(slot) = self.topics.get_mut(i) {
            *slot = Some(ByteStr::from(topic));
        }
    }

    pub(super) fn get(&self, alias: u16) -> Option<&ByteStr> {
        let i = usize::from(alias).checked_sub(1)?;
        self.topics.get(i)?.as_ref()
    }
}

/// What to put in an outgoing PUBLISH for its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AliasPlan {
    /// The client knows this alias for the topic: send the alias and an empty topic.
    Known(u16),
    /// Send the topic with this alias so the client learns (or re-learns) the mapping.
    Assign(u16),
}

/// Aliases we set up towards the client.
#[derive(Debug, Default)]
pub(super) struct OutAliases {
    /// topic → (alias, last use)
    by_topic: AHashMap<Box<str>, (u16, u64)>,
    clock: u64,
}

impl OutAliases {
    /// The plan for `topic` with at most `max` aliases in use. Nothing changes until
    /// `commit`: a PUBLISH that is then not sent (too large) must not move the mapping.
    pub(super) fn plan(&self, topic: &str, max: u16) -> AliasPlan {
        if let Some(&(alias, _)) = self.by_topic.get(topic) {
            return AliasPlan::Known(alias);
        }
        if self.by_topic.len() < usize::from(max) {
            return AliasPlan::Assign(self.by_topic.len() as u16 + 1);
        }
        // All taken: reuse the least recently used alias.
        let lru = self.by_topic.values().min_by_key(|&&(_, used)| used);
        AliasPlan::Assign(lru.map_or(1, |&(alias, _)| alias))
    }

    /// Records that `plan` was sent for `topic`.
    pub(super) fn commit(&mut self, topic: &str, plan: AliasPlan) {
        self.clock += 1;
        let now = self.clock;
        match plan {
            AliasPlan::Known(_) => {
                if let Some(e) = self.by_topic.get_mut(topic) {
                    e.1 = now;
                }
            }
            AliasPlan::Assign(alias) => {
                self.by_topic.retain(|_, &mut (a, _)| a != alias);
                self.by_topic.insert(Box::from(topic), (alias, now));
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_topic.len()
    }
}

impl Shard {
    /// Sends a PUBLISH to `conn`, replacing its topic by an alias where the client allows
    /// aliases. False when it was not sent (too large for the client, or conn gone).
    pub(super) fn send_publish(&mut self, conn: ConnId, mut p: Publish) -> bool {
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return false;
        };
        if !c.version.is_v5() || c.out_alias_max == 0 {
            return self.write_packet(conn, &Packet::Publish(p));
        }
        let max = c.out_alias_max;
        let topic = p.topic.clone();
        let plan = c.ext().out_aliases.plan(&topic, max);
        match plan {
            AliasPlan::Known(a) => {
                p.topic = ByteStr::from_static("");
                p.properties.topic_alias = Some(a);
            }
            AliasPlan::Assign(a) => p.properties.topic_alias = Some(a),
        }
        if !self.write_packet(conn, &Packet::Publish(p)) {
            return false;
        }
        if let Some(c) = self.conns.get_mut(conn.slot, conn.gen) {
            c.ext().out_aliases.commit(&topic, plan);
        }
        true
    }

    /// Resolves the topic of an incoming PUBLISH with a Topic Alias: records a new mapping
    /// or looks one up. `Err` when the alias is 0, above our Topic Alias Maximum, or unknown
    /// with an empty topic: the caller disconnects with 0x94 (§3.3.2.3.4).
    pub(super) fn resolve_alias(
        &mut self,
        conn: ConnId,
        alias: u16,
        topic: ByteStr,
    ) -> Result<ByteStr, ()> {
        let max = self.cfg.topic_alias_maximum;
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return Err(());
        };
        if alias == 0 || alias > max {
            return Err(());
        }
        let aliases = &mut c.ext().in_aliases;
        if topic.is_empty() {
            return aliases.get(alias).cloned().ok_or(());
        }
        aliases.set(alias, &topic);
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_aliases_set_replace_and_unknown() {
        let mut a = InAliases::default();
        assert_eq!(a.get(1), None);
        a.set(3, "a/b");
        assert_eq!(a.get(3).map(|t| t.as_str()), Some("a/b"));
        assert_eq!(a.get(2), None, "gap stays unknown");
        assert_eq!(a.get(0), None);
        a.set(3, "c");
        assert_eq!(a.get(3).map(|t| t.as_str()), Some("c"));
    }

    #[test]
    fn out_aliases_fill_then_replace_least_recently_used() {
        let mut o = OutAliases::default();
        for (t, want) in [("a", 1), ("b", 2), ("c", 3)] {
            let p = o.plan(t, 3);
            assert_eq!(p, AliasPlan::Assign(want));
            o.commit(t, p);
        }
        assert_eq!(o.plan("a", 3), AliasPlan::Known(1));
        o.commit("a", AliasPlan::Known(1)); // a is now the most recent; b the least
        let p = o.plan("d", 3);
        assert_eq!(p, AliasPlan::Assign(2), "b's alias is reused");
        o.commit("d", p);
        assert_eq!(o.len(), 3);
        assert_eq!(
            o.plan("b", 3),
            AliasPlan::Assign(3),
            "b forgotten; c is now LRU"
        );
        assert_eq!(o.plan("d", 3), AliasPlan::Known(2));
    }

    #[test]
    fn uncommitted_plan_changes_nothing() {
        let o = OutAliases::default();
        let _ = o.plan("a", 2);
        assert_eq!(o.len(), 0);
        assert_eq!(o.plan("a", 2), AliasPlan::Assign(1));
    }
}
