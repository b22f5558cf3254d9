//! The run spec: everything a worker needs to know, built once by the parent from the
//! command line and handed to every worker as JSON. Workers derive their own slice of each
//! connection group from it (`Group::slice`), so the parent sends nothing per connection.

use crate::plan;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

/// What a connection does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Connects and holds (keepalive only).
    Idle,
    /// Subscribes to its topic filter and receives.
    Sub,
    /// Publishes to its topic.
    Pub,
}

impl Role {
    /// The letter in client ids: `rmqb-s17`, `rmqb-p17`, `rmqb-c17`.
    pub fn letter(self) -> char {
        match self {
            Role::Idle => 'c',
            Role::Sub => 's',
            Role::Pub => 'p',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scenario {
    Conn,
    Sub,
    Pub,
    Fanin,
    Fanout,
    P2p,
    Shared,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Conn => "conn",
            Scenario::Sub => "sub",
            Scenario::Pub => "pub",
            Scenario::Fanin => "fanin",
            Scenario::Fanout => "fanout",
            Scenario::P2p => "p2p",
            Scenario::Shared => "shared",
        }
    }
}

/// A run of connections with one role: indexes `start..start+count` (`-n` based), a topic
/// pattern (a filter for subscribers), and the global ordinal of its first connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub role: Role,
    pub start: u64,
    pub count: u64,
    pub topic: String,
    pub ordinal_base: u64,
}

impl Group {
    /// The positions (0-based within the group) that worker `w` of `workers` opens.
    pub fn slice(&self, w: usize, workers: usize) -> Range<u64> {
        plan::split_even(self.count, workers)
            .get(w)
            .cloned()
            .unwrap_or(0..0)
    }
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSpec {
    pub scenario: Scenario,
    pub hosts: Vec<SocketAddr>,
    /// Source addresses to bind (empty: the kernel picks).
    pub sources: Vec<IpAddr>,
    pub groups: Vec<Group>,
    pub workers: usize,
    /// Connections per second over the whole run (0: unlimited).
    pub rate: u64,
    /// Publish interval per publisher in ms (0: as fast as the window allows).
    pub interval_ms: u64,
    /// Messages per publisher (0: until the duration ends).
    pub limit: u64,
    pub qos: u8,
    pub retain: bool,
    pub payload: usize,
    pub version: u8,
    pub keepalive: u16,
    pub clean: bool,
    pub session_expiry: u32,
    /// Unacknowledged QoS 1/2 publishes per publisher.
    pub inflight: u16,
    pub prefix: String,
    /// Username and password of every CONNECT (`-u`, `-P`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Seconds one connection may take from connect() to CONNACK (and SUBACK).
    pub connect_timeout_s: u64,
    /// Longest the whole run may take; a worker exits by itself past it.
    pub hard_deadline_s: u64,
    /// TLS and/or WebSocket around each connection (`--tls`, `--ws`).
    #[serde(default)]
    pub tunnel: crate::engine::tunnel::TunnelSpec,
}

impl RunSpec {
    pub fn total(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    pub fn client_id(&self, role: Role, index: u64) -> String {
        format!("{}-{}{}", self.prefix, role.letter(), index)
    }

    pub fn count(&self, role: Role) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.role == role)
            .map(|g| g.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_slices_of_groups_cover_each_connection_once() {
        let g = Group {
            role: Role::Sub,
            start: 100,
            count: 7,
            topic: "t".into(),
            ordinal_base: 7,
        };
        let s: Vec<_> = (0..3).map(|w| g.slice(w, 3)).collect();
        assert_eq!(s, vec![0..3, 3..5, 5..7]);
        assert_eq!(g.slice(5, 3), 0..0);
    }
}
