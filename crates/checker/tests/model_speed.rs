//! Throughput and symmetry numbers of the model checker on the benchmark configuration (a grid, 3
//! replicas, 2 writes each, state broadcast over a lossy, duplicating network with one drop).
//!
//! Ignored by default: these runs take seconds to minutes and only print numbers. Run them in
//! release with `cargo test --release -p converge-checker --test model_speed -- --ignored
//! --nocapture`.

use converge_checker::model::{
    unique_states_with_and_without_symmetry, CheckConfig, ModelCrdt, NetworkKind, Symmetry,
};
use converge_crdt::TieBreak;

fn config(tie_break: TieBreak, threads: u32) -> CheckConfig {
    CheckConfig {
        crdt: ModelCrdt::Grid { tie_break },
        writes_per_replica: 2,
        network: NetworkKind::LossyDuplicating,
        timeout_ms: 600_000,
        threads,
        ..Default::default()
    }
}

#[test]
#[ignore = "prints throughput numbers; takes a minute in release"]
fn states_per_second_and_symmetry_factor() {
    for tie_break in [TieBreak::KeepLocal, TieBreak::PeerId] {
        for threads in [1, 2] {
            let space = unique_states_with_and_without_symmetry(&config(tie_break, threads))
                .expect("a valid configuration");
            println!(
                "{tie_break:?} threads {threads}: without symmetry {} unique, {} states in {} ms \
                 = {:.0} states/s; with symmetry {} unique, {} states in {} ms = {:.0} states/s; \
                 factor {:.2}, applied {}, complete {}",
                space.without_symmetry,
                space.states_without_symmetry,
                space.elapsed_ms_without_symmetry,
                space.states_per_sec_without_symmetry(),
                space.with_symmetry,
                space.states_with_symmetry,
                space.elapsed_ms_with_symmetry,
                space.states_per_sec_with_symmetry(),
                space.reduction(),
                space.symmetry_applied,
                space.complete
            );
        }
    }
}

/// One configuration on one thread, for `perf record`: the grid explored with and without
/// symmetry. `TIE_BREAK=peer-id` explores it once, unreduced (symmetry is unsound there), and
/// so does `SYMMETRY=off`; `WRITES=n` sets the writes per replica and `REPLICAS=n` the replicas
/// (a smaller space, for cachegrind's exact instruction counts), and `MAX_STATES=n` stops after
/// about `n` states (on one thread the same states every time).
#[test]
#[ignore = "for profiling"]
fn profile_one_thread() {
    let tie_break = match std::env::var("TIE_BREAK").as_deref() {
        Ok("peer-id") => TieBreak::PeerId,
        Ok("random") => TieBreak::Random,
        _ => TieBreak::KeepLocal,
    };
    let number = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let space = unique_states_with_and_without_symmetry(&CheckConfig {
        writes_per_replica: number("WRITES", 2),
        replicas: number("REPLICAS", 3),
        max_states: std::env::var("MAX_STATES")
            .ok()
            .and_then(|n| n.parse().ok()),
        symmetry: match std::env::var("SYMMETRY").as_deref() {
            Ok("off") => Symmetry::Off,
            _ => Symmetry::On,
        },
        ..config(tie_break, 1)
    })
    .expect("a valid configuration");
    println!("{space:?}");
}
