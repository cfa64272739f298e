//! Simulator throughput on the reference grid scenario, against a bare hand-written loop doing the
//! same merges (the practical ceiling: what the CRDT work alone costs). The scenario and the loop
//! are the ones `converge-bench` reports on (`converge_bench::reference`); this is criterion's view
//! of them, for comparing one change against another.
//!
//! Besides criterion's own report, the bench prints one line of human output and one line of
//! stable JSON with events per second and the ratio of the two loops, measured in one run.

use std::hint::black_box;
use std::time::Instant;

use converge_bench::reference::{bare_loop, reference_scenario, simulate, Work};
use criterion::{criterion_group, Criterion};

fn criterion_benches(c: &mut Criterion) {
    let scenario = reference_scenario();
    let outcome = simulate(&scenario, 1).expect("the reference scenario is valid");
    let work = Work::of(&outcome);
    let mut group = c.benchmark_group("reference");
    group.throughput(criterion::Throughput::Elements(outcome.events));
    group.bench_function("simulator", |b| {
        b.iter(|| {
            simulate(black_box(&scenario), black_box(1))
                .expect("valid")
                .events
        })
    });
    group.bench_function("bare-loop", |b| {
        b.iter(|| bare_loop(black_box(work), scenario.replicas))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = criterion_benches
}

/// Times both loops back to back over the same seeds and prints the ratio.
fn summary() {
    let scenario = reference_scenario();
    let seeds = 0..50u64;
    let mut events = 0u64;
    let mut works = Vec::new();
    // Warm up once so that both loops run with warm caches.
    black_box(simulate(&scenario, 0).expect("valid").events);
    let started = Instant::now();
    for seed in seeds.clone() {
        let outcome = simulate(&scenario, seed).expect("valid");
        events += outcome.events;
        works.push(Work::of(&outcome));
    }
    let simulator_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for work in &works {
        black_box(bare_loop(*work, scenario.replicas));
    }
    let bare_s = started.elapsed().as_secs_f64();
    let merges: u64 = works.iter().map(|w| w.merges).sum();
    let events_per_s = events as f64 / simulator_s;
    let ratio = bare_s / simulator_s;
    println!(
        "reference scenario, {} seeds: {events} events, {merges} merges; simulator {:.1} ms \
         ({:.2} M events/s), bare loop {:.1} ms; simulator speed / bare loop speed = {ratio:.3}",
        seeds.end - seeds.start,
        simulator_s * 1e3,
        events_per_s / 1e6,
        bare_s * 1e3,
    );
    println!(
        "{{\"bench\":\"netsim-reference\",\"events\":{events},\"merges\":{merges},\
         \"simulator_s\":{simulator_s:.6},\"bare_loop_s\":{bare_s:.6},\
         \"events_per_s\":{events_per_s:.0},\"ratio_to_bare_loop\":{ratio:.4}}}"
    );
}

fn main() {
    summary();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
