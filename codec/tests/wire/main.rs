//! Wire-format tests of the codec, one binary for all suites (link once).
//!
//! Byte vectors are annotated field by field. Each suite file covers one area:
//! `v3` (MQTT 3.1 and 3.1.1, every packet), `v5` and `v5_acks` (MQTT 5.0, every packet),
//! `props` (every property, the allowed-here and duplicate rules), `negative` (one test per
//! validation rule, asserting the exact error), `partial` (prefixes and size limits),
//! `reuse` (`EncodedPublish`) and `spec` (the specification's own examples).

mod common;
mod negative;
mod negative_sub;
mod partial;
mod props;
mod reuse;
mod spec;
mod v3;
mod v5;
mod v5_acks;
