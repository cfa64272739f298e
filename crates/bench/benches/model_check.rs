//! Model-checking throughput and the effect of symmetry reduction.
//!
//! `cargo bench -p converge-bench --bench model_check` prints, before criterion's timings, the
//! unique-state counts with and without symmetry and the states per second of one full run.

use std::hint::black_box;

use converge_checker::model::{
    check, unique_states_with_and_without_symmetry, CheckConfig, ModelCrdt, NetworkKind, Symmetry,
};
use converge_crdt::TieBreak;
use criterion::{criterion_group, criterion_main, Criterion};

/// The benchmark configuration: a grid, 3 replicas, 2 writes each, state broadcast over a lossy,
/// duplicating network (one drop).
fn config(tie_break: TieBreak) -> CheckConfig {
    CheckConfig {
        crdt: ModelCrdt::Grid { tie_break },
        writes_per_replica: 2,
        network: NetworkKind::LossyDuplicating,
        timeout_ms: 300_000,
        ..Default::default()
    }
}

fn print_numbers() {
    // Peer-id is left out: symmetry is unsound for it, so both counts would be the same.
    for tie_break in [TieBreak::KeepLocal, TieBreak::Random] {
        // Random's space is over 13 million states unreduced: a minute each way shows the factor
        // without making the benchmark take ten.
        let timeout_ms = if tie_break == TieBreak::Random {
            60_000
        } else {
            300_000
        };
        match unique_states_with_and_without_symmetry(&CheckConfig {
            timeout_ms,
            ..config(tie_break)
        }) {
            Ok(space) => println!(
                "{tie_break:?}: unique states {} with symmetry, {} without (x{:.2}), applied {}, complete {}",
                space.with_symmetry,
                space.without_symmetry,
                space.without_symmetry as f64 / space.with_symmetry.max(1) as f64,
                space.symmetry_applied,
                space.complete
            ),
            Err(error) => println!("{tie_break:?}: {error}"),
        }
    }
    for (tie_break, symmetry) in [
        (TieBreak::PeerId, Symmetry::Off),
        (TieBreak::KeepLocal, Symmetry::On),
    ] {
        match check(&CheckConfig {
            symmetry,
            ..config(tie_break)
        }) {
            Ok(report) => println!(
                "check {tie_break:?} symmetry {symmetry:?}: {:?}, {} states ({} unique) in {} ms = {:.0} states/s; shortest counterexample {:?} actions",
                report.verdict,
                report.states,
                report.unique_states,
                report.elapsed_ms,
                report.states_per_sec,
                report.counterexample.as_ref().map(|c| c.depth)
            ),
            Err(error) => println!("check {tie_break:?}: {error}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    print_numbers();
    let mut group = c.benchmark_group("model_check");
    group.sample_size(10);
    // A complete exploration (no early stop at the first failure) of the same network with one
    // write per replica, with and without symmetry: small enough for criterion to repeat.
    group.bench_function("grid-3x1-lossy-duplicating-explore-keep-local", |b| {
        b.iter(|| {
            let config = CheckConfig {
                writes_per_replica: 1,
                ..config(TieBreak::KeepLocal)
            };
            black_box(unique_states_with_and_without_symmetry(&config).ok())
        })
    });
    group.bench_function("grid-3x1-lossy-duplicating-check-peer-id", |b| {
        b.iter(|| {
            let config = CheckConfig {
                writes_per_replica: 1,
                ..config(TieBreak::PeerId)
            };
            black_box(check(&config).ok())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
