//! Tokenward's benchmarks live in `benches/` of this package: `cargo bench -p tokenward-bench
//! --bench verify` (or `store`, `audit`, `rotate`, …). Each measures a hot path beside its floor on
//! this machine and, where one exists, a peer, and prints the ratios.
//!
//! The library holds what more than one target shares: the revocation fan-out harness
//! ([`fanout`]: `examples/fanout.rs`, `tests/fanout.rs`, the `bounded` bench's bulk load).

pub mod fanout;
