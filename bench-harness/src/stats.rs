//! What a run measures: counters and HDR histograms, how workers ship them to the parent
//! (hdrhistogram's V2 format) and how the parent merges them, plus the CPU time the
//! harness itself spent (getrusage).
//!
//! Counters add field by field (`AddAssign`), histograms merge exactly: the merge of the
//! serialized parts equals one histogram of every sample.

use anyhow::{bail, Context, Result};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Declares the counters once so the field list, `AddAssign` and serde never disagree.
/// `sum` fields add up; `min` / `max` fields are CLOCK_MONOTONIC instants (0 = none yet)
/// merged by earliest / latest, valid across the processes of one host.
macro_rules! counters {
    (sum { $($(#[$m:meta])* $name:ident),* $(,)? }
     min { $($(#[$mm:meta])* $min:ident),* $(,)? }
     max { $($(#[$xm:meta])* $max:ident),* $(,)? }) => {
        /// Event counts of one worker, or of the whole run once merged.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $($(#[$m])* pub $name: u64,)*
            $($(#[$mm])* pub $min: u64,)*
            $($(#[$xm])* pub $max: u64,)*
        }
        impl std::ops::AddAssign<&Counters> for Counters {
            fn add_assign(&mut self, o: &Counters) {
                $(self.$name += o.$name;)*
                $(if self.$min == 0 || (o.$min != 0 && o.$min < self.$min) { self.$min = o.$min; })*
                $(self.$max = self.$max.max(o.$max);)*
            }
        }
    };
}

counters! {
    sum {
    /// Connections this run was asked to open.
    conn_target,
    /// TCP connects started.
    conn_attempted,
    /// CONNACK with success received.
    connected,
    /// TCP connect failed or timed out, or the socket closed before CONNACK.
    conn_failed,
    /// CONNACK with a refusal code.
    connack_refused,
    /// Connections the broker closed after CONNACK.
    closed_by_peer,
    /// Subscriber connections whose SUBACK granted every filter.
    subscribed,
    /// SUBACK refusals (0x80 or a v5 error code).
    sub_failed,
    /// Publisher connections.
    publishers,
    /// Publishers that sent their `-L` messages and had all of them acknowledged.
    pub_finished,
    /// PUBLISH packets written.
    published,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received.
    pub_acked,
    /// PUBLISH packets received by subscribers (duplicates included).
    received,
    /// ... of which new (publisher, sequence) pairs at that subscriber.
    received_unique,
    duplicates,
    reordered,
    /// Sequence numbers below a stream's highest that never arrived.
    gaps,
    /// Payloads without the harness header (not ours).
    foreign,
    bytes_out,
    bytes_in,
    /// CPU time of the process that reported (getrusage RUSAGE_SELF).
    cpu_user_us,
    cpu_sys_us,
    }
    min {
        /// When the first message was published / received.
        first_pub_ns,
        first_rx_ns,
    }
    max {
        /// When the last message was published / received.
        last_pub_ns,
        last_rx_ns,
    }
}

/// Histogram range: 1 µs to one hour, 3 significant digits (0.1% error).
const HIST_MAX_US: u64 = 3_600_000_000;

fn new_hist() -> Histogram<u64> {
    // Constant, valid bounds: cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// The latency histograms, in microseconds.
#[derive(Debug, Clone)]
pub struct Hists {
    /// Publisher send to subscriber receive.
    pub latency: Histogram<u64>,
    /// TCP connect started to CONNACK received.
    pub connect: Histogram<u64>,
    /// PUBLISH written to PUBACK / PUBCOMP received.
    pub ack: Histogram<u64>,
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            latency: new_hist(),
            connect: new_hist(),
            ack: new_hist(),
        }
    }
}

impl Hists {
    fn all(&self) -> [&Histogram<u64>; 3] {
        [&self.latency, &self.connect, &self.ack]
    }
    fn all_mut(&mut self) -> [&mut Histogram<u64>; 3] {
        [&mut self.latency, &mut self.connect, &mut self.ack]
    }

    /// Records a duration given in nanoseconds (clamped into the histogram's range).
    pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
        h.saturating_record((ns / 1000).max(1));
    }

    /// Appends the three histograms, each as a u32 length and its V2 encoding.
    pub fn serialize_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut ser = V2Serializer::new();
        let mut buf = Vec::new();
        for h in self.all() {
            buf.clear();
            ser.serialize(h, &mut buf)
                .map_err(|e| anyhow::anyhow!("histogram serialize: {e:?}"))?;
            out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
            out.extend_from_slice(&buf);
        }
        Ok(())
    }

    /// Reads what `serialize_into` wrote; returns the histograms and the bytes consumed.
    pub fn deserialize(mut b: &[u8]) -> Result<(Hists, usize)> {
        let start = b.len();
        let mut out = Hists::default();
        let mut de = Deserializer::new();
        for h in out.all_mut() {
            if b.len() < 4 {
                bail!("histogram frame truncated");
            }
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let body = b.get(4..4 + len).context("histogram frame truncated")?;
            let got: Histogram<u64> = de
                .deserialize(&mut &body[..])
                .map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
            h.add(&got)
                .map_err(|e| anyhow::anyhow!("histogram merge: {e:?}"))?;
            b = &b[4 + len..];
        }
        Ok((out, start - b.len()))
    }

    pub fn merge(&mut self, o: &Hists) -> Result<()> {
        for (a, b) in self.all_mut().into_iter().zip(o.all()) {
            a.add(b)
                .map_err(|e| anyhow::anyhow!("histogram merge: {e:?}"))?;
        }
        Ok(())
    }

    pub fn reset(&mut self) {
        for h in self.all_mut() {
            h.reset();
        }
    }
}

/// The usual percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// CPU time (user, system) in microseconds of this process (`children == false`) or of
/// its waited-for children.
pub fn cpu_us(children: bool) -> (u64, u64) {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of samples from 1 µs to ~40 s (xorshift, no extra dependency).
    fn samples(n: usize, mut x: u64) -> Vec<u64> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1 + (x % 1000) * (1 + (x >> 40) % 40_000)
            })
            .collect()
    }

    #[test]
    fn merge_of_serialized_parts_equals_one_histogram() {
        let all = samples(30_000, 0x9E37_79B9_7F4A_7C15);
        let mut whole = Hists::default();
        let mut parts = vec![Hists::default(), Hists::default(), Hists::default()];
        for (i, &v) in all.iter().enumerate() {
            whole.latency.record(v).unwrap();
            whole.connect.record(v / 2 + 1).unwrap();
            parts[i % 3].latency.record(v).unwrap();
            parts[i % 3].connect.record(v / 2 + 1).unwrap();
        }
        // Each part crosses a "process boundary": serialized, sent as bytes, read back.
        let mut merged = Hists::default();
        for p in &parts {
            let mut wire = Vec::new();
            p.serialize_into(&mut wire).unwrap();
            wire.extend_from_slice(b"trailing");
            let (back, used) = Hists::deserialize(&wire).unwrap();
            assert_eq!(&wire[used..], b"trailing");
            merged.merge(&back).unwrap();
        }
        for (m, w) in [
            (&merged.latency, &whole.latency),
            (&merged.connect, &whole.connect),
            (&merged.ack, &whole.ack),
        ] {
            assert_eq!(m.len(), w.len());
            assert_eq!(m.max(), w.max());
            assert_eq!(m.min(), w.min());
            let mv: Vec<_> = m
                .iter_recorded()
                .map(|x| (x.value_iterated_to(), x.count_at_value()))
                .collect();
            let wv: Vec<_> = w
                .iter_recorded()
                .map(|x| (x.value_iterated_to(), x.count_at_value()))
                .collect();
            assert_eq!(mv, wv);
            assert_eq!(Summary::of(m), Summary::of(w));
        }
        assert_eq!(merged.latency.len(), 30_000);
        assert!(merged.ack.is_empty());
    }

    #[test]
    fn summary_percentiles_are_exact_for_small_values() {
        let mut h = new_hist();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let s = Summary::of(&h);
        assert_eq!(
            (s.count, s.min, s.p50, s.p90, s.p99, s.p999, s.max),
            (1000, 1, 500, 900, 990, 999, 1000)
        );
        assert_eq!(Summary::of(&new_hist()), Summary::default());
    }

    #[test]
    fn record_ns_rounds_to_microseconds_and_clamps() {
        let mut h = new_hist();
        Hists::record_ns(&mut h, 10); // under 1 µs counts as 1 µs
        Hists::record_ns(&mut h, 2_500_000); // 2.5 ms
        Hists::record_ns(&mut h, u64::MAX); // clamped to the one-hour ceiling
        assert_eq!(h.len(), 3);
        assert_eq!(h.min(), 1);
        assert!(h.equivalent(h.value_at_quantile(0.5), 2500));
        assert!(h.max() >= HIST_MAX_US);
    }

    #[test]
    fn counters_add_field_by_field() {
        let mut a = Counters {
            connected: 2,
            received: 10,
            cpu_user_us: 5,
            ..Default::default()
        };
        let b = Counters {
            connected: 3,
            received: 1,
            gaps: 4,
            ..Default::default()
        };
        a += &b;
        assert_eq!(
            a,
            Counters {
                connected: 5,
                received: 11,
                gaps: 4,
                cpu_user_us: 5,
                ..Default::default()
            }
        );
    }

    #[test]
    fn truncated_histogram_frames_are_errors() {
        let mut wire = Vec::new();
        Hists::default().serialize_into(&mut wire).unwrap();
        assert!(Hists::deserialize(&wire[..wire.len() - 1]).is_err());
        assert!(Hists::deserialize(&[1, 0]).is_err());
    }
}
