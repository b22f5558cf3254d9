//! The pipe protocol between the parent and its worker processes.
//!
//! Worker to parent (the worker's stdout), binary frames:
//! ```text
//! +-----+-------------+----------------------------------------------------------------+
//! | tag | body len u32| body: u32 json len, Counters as JSON, then 3 V2 histograms     |
//! +-----+-------------+----------------------------------------------------------------+
//! ```
//! `READY` once every connection of the worker is up (or failed) and subscribed,
//! `PROGRESS` about every 250 ms (cumulative counters, histograms of the interval only),
//! `FINAL` once at the end (cumulative counters, histograms of the whole run).
//!
//! Parent to worker (the worker's stdin), one word per line: `go`, `drain`, `stop`.
//! A closed stdin means `stop` (the parent died).

use crate::stats::{Counters, Hists};
use anyhow::{bail, Context, Result};

pub const READY: u8 = b'R';
pub const PROGRESS: u8 = b'P';
pub const FINAL: u8 = b'F';

/// A decoded worker report.
#[derive(Debug)]
pub struct Report {
    pub tag: u8,
    pub counters: Counters,
    pub hists: Hists,
}

/// Encodes one frame.
pub fn encode(tag: u8, counters: &Counters, hists: &Hists) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(counters)?;
    let mut body = Vec::with_capacity(json.len() + 256);
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(&json);
    hists.serialize_into(&mut body)?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one frame from the front of `buf`; `Ok(None)` until it is complete.
/// Returns the report and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Report, usize)>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    if ![READY, PROGRESS, FINAL].contains(&tag) {
        bail!("worker pipe: unknown frame tag {tag:#04x}");
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let Some(body) = buf.get(5..5 + len) else {
        return Ok(None);
    };
    let jlen = u32::from_le_bytes(body.get(..4).context("short frame")?.try_into()?) as usize;
    let json = body.get(4..4 + jlen).context("short frame")?;
    let counters: Counters = serde_json::from_slice(json).context("worker counters")?;
    let (hists, _) = Hists::deserialize(&body[4 + jlen..])?;
    Ok(Some((
        Report {
            tag,
            counters,
            hists,
        },
        5 + len,
    )))
}

/// Commands from the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start publishing (every worker is connected and subscribed).
    Go,
    /// Stop publishing; keep receiving.
    Drain,
    /// Disconnect, send FINAL and exit.
    Stop,
}

impl Command {
    pub fn word(self) -> &'static str {
        match self {
            Command::Go => "go\n",
            Command::Drain => "drain\n",
            Command::Stop => "stop\n",
        }
    }
    pub fn parse(line: &str) -> Option<Command> {
        match line.trim() {
            "go" => Some(Command::Go),
            "drain" => Some(Command::Drain),
            "stop" => Some(Command::Stop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_completion() {
        let c = Counters {
            connected: 7,
            received: 99,
            ..Default::default()
        };
        let mut h = Hists::default();
        h.latency.record(1234).unwrap();
        let mut stream = encode(PROGRESS, &c, &h).unwrap();
        let first = stream.len();
        stream.extend(encode(FINAL, &Counters::default(), &Hists::default()).unwrap());
        for cut in 0..first {
            assert!(decode(&stream[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (r, used) = decode(&stream).unwrap().unwrap();
        assert_eq!((r.tag, used), (PROGRESS, first));
        assert_eq!(r.counters, c);
        assert_eq!(r.hists.latency.len(), 1);
        assert!(r.hists.latency.equivalent(r.hists.latency.max(), 1234));
        let (r, _) = decode(&stream[used..]).unwrap().unwrap();
        assert_eq!(r.tag, FINAL);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"Xabcdefgh").is_err());
        assert_eq!(Command::parse("go\n"), Some(Command::Go));
        assert_eq!(Command::parse(Command::Stop.word()), Some(Command::Stop));
        assert_eq!(Command::parse("later"), None);
    }
}
