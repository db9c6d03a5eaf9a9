//! Tokenward's benchmarks live in `benches/` of this crate: `cargo bench -p tokenward-bench
//! --bench verify` (or `store`, `audit`, `rotate`). Each measures a hot path beside its floor on
//! this machine and, where one exists, a peer, and prints the ratios. This library is empty.
