//! Benchmarks of converge: how much of the state space a user can afford.
//!
//! A user sweeps millions of seeds, so speed is coverage. This crate measures it in one run of
//! `cargo run --release -p converge-bench` (add `--quick` for a run under a minute), which prints a
//! table and writes `reports/bench.json`:
//!
//! - simulator events per second on the reference scenario with every oracle on, against a bare
//!   hand-written loop doing the same merges (the ceiling) and against the same workload written
//!   for turmoil;
//! - seeds per second of a sweep on 1 and 2 threads, with identical per-seed results;
//! - model-checker states per second, and the states saved by symmetry reduction;
//! - wall time and peak heap memory as replicas and events grow, with fitted growth exponents.
//!
//! How the modules fit: [`reference`] holds the reference scenario and the bare loop (shared with
//! the criterion benches in `benches/`), [`turmoil_grid`] the turmoil rendering of the same
//! workload, [`measure`] one function per measurement, [`fit`] the log-log least squares,
//! [`alloc`] the counting allocator the binary installs for peak memory, and [`report`] the JSON
//! document and the table, both made from one value.
//!
//! The decision that matters most: **every ratio is taken within one run**, both sides measured
//! back to back on the same machine, and every target is printed next to its measurement with
//! whether it was met. A busy machine slows both sides of a ratio together; absolute numbers from
//! a busy machine are marked as such in `docs/performance.md`, never adjusted.
//!
//! This is the only crate of the workspace allowed to depend on peers such as turmoil; it is not
//! published.

pub mod alloc;
pub mod fit;
pub mod measure;
pub mod reference;
pub mod report;
pub mod turmoil_grid;
