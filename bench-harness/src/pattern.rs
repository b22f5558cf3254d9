//! Topic patterns as emqtt-bench writes them: `%i` is the connection's index, `%c` its client
//! id, `%%` a literal percent sign.
//!
//! A pattern is parsed once and expanded once per connection at start-up, never per message.
//! Anything else after `%` is refused, so a typo does not silently become part of a topic.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Index,
    ClientId,
}

/// A parsed `-t` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    parts: Vec<Part>,
}

impl TopicPattern {
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            bail!("empty topic pattern");
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars();
        while let Some(ch) = chars.next() {
            if ch != '%' {
                lit.push(ch);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    lit.push('%');
                    continue;
                }
                Some('i') => Part::Index,
                Some('c') => Part::ClientId,
                Some(other) => {
                    bail!("topic pattern {s:?}: unknown placeholder %{other} (use %i, %c or %%)")
                }
                None => {
                    bail!("topic pattern {s:?}: a lone % at the end (write %% for a percent sign)")
                }
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(TopicPattern { parts })
    }

    /// The topic for connection `index` whose client id is `client_id`.
    pub fn expand(&self, index: u64, client_id: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Index => out.push_str(&index.to_string()),
                Part::ClientId => out.push_str(client_id),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_index_and_client_id() {
        let p = TopicPattern::parse("bench/%i/from/%c").unwrap();
        assert_eq!(p.expand(42, "rmqb-p-42"), "bench/42/from/rmqb-p-42");
    }

    #[test]
    fn placeholders_at_both_ends_and_repeated() {
        let p = TopicPattern::parse("%i/x/%i").unwrap();
        assert_eq!(p.expand(7, "c"), "7/x/7");
        let p = TopicPattern::parse("%c").unwrap();
        assert_eq!(p.expand(1, "id-1"), "id-1");
    }

    #[test]
    fn literal_percent_and_constant_topics() {
        let p = TopicPattern::parse("a/100%%/b").unwrap();
        assert_eq!(p.expand(3, "c"), "a/100%/b");
        let p = TopicPattern::parse("$share/g/t/#").unwrap();
        assert_eq!(p.expand(0, "c"), "$share/g/t/#");
    }

    #[test]
    fn refuses_unknown_and_dangling_placeholders() {
        let e = TopicPattern::parse("a/%u").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder %u"), "{e}");
        let e = TopicPattern::parse("a/%").unwrap_err().to_string();
        assert!(e.contains("lone %"), "{e}");
        assert!(TopicPattern::parse("").is_err());
    }
}
