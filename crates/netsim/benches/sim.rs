//! Simulator throughput on the reference grid scenario, against a bare hand-written loop doing the
//! same merges (the practical ceiling: what the CRDT work alone costs).
//!
//! The reference scenario: a 3x3 LWW grid on 5 replicas, state broadcast over a full mesh plus
//! anti-entropy every second to 2 peers, 5% loss, 60 s of virtual time, 10 writes per second per
//! replica. Besides criterion's own report, the bench prints one line of human output and one
//! line of stable JSON with events per second and the ratio of the two loops, measured in one run.

use std::hint::black_box;
use std::time::Instant;

use converge_crdt::{
    FixedCoin, Intent, LwwGrid, LwwGridConfig, OpCrdt, ReplicaId, Stamp, StateCrdt,
};
use converge_netsim::{run, NoObserver, Outcome, ProtocolKind, Scenario, SimDuration, Topology};
use criterion::{criterion_group, Criterion};

fn reference() -> Scenario {
    let mut scenario = Scenario {
        name: "reference".into(),
        replicas: 5,
        duration: SimDuration::from_secs(60),
        settle: SimDuration::ZERO,
        ..Scenario::default()
    };
    scenario.protocol.kind = ProtocolKind::StateBroadcast;
    scenario.protocol.topology = Topology::Mesh;
    scenario.protocol.anti_entropy = Some(SimDuration::from_secs(1));
    scenario.protocol.fanout = 2;
    scenario.network.drop = 0.05;
    scenario.workload.rate = 10.0;
    scenario
}

fn grid(_: ReplicaId) -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

fn simulate(scenario: &Scenario, seed: u64) -> Outcome<LwwGrid> {
    run(scenario, seed, &grid, &mut NoObserver).expect("the reference scenario is valid")
}

/// The work a run does, counted from its outcome: writes applied at their origin, and state
/// merges (every delivered message carries a state in this scenario).
#[derive(Clone, Copy)]
struct Work {
    writes: u64,
    merges: u64,
}

/// The same number of op applications and state merges on five grids, with one state snapshot
/// cloned per broadcast, and nothing else: no queue, no network, no trace.
fn bare_loop(work: Work, replicas: u32) -> u64 {
    let mut states: Vec<LwwGrid> = (0..replicas).map(grid).collect();
    let coin = &mut FixedCoin(false);
    let fan_out = (work.merges / work.writes.max(1)).max(1);
    let mut merges_left = work.merges;
    let mut time = 0u64;
    for write in 0..work.writes {
        let origin = (write % u64::from(replicas)) as usize;
        time += 1;
        let intent = Intent::Put {
            key: (write.wrapping_mul(0x9e37_79b9) % 9) as u32,
            value: write,
        };
        let op = states[origin].prepare(&intent, Stamp::new(time, origin as ReplicaId));
        states[origin].apply(&op, coin);
        let snapshot = states[origin].clone();
        let last = write + 1 == work.writes;
        let count = if last {
            merges_left
        } else {
            fan_out.min(merges_left)
        };
        for k in 0..count {
            let to = (origin + 1 + (k as usize % (replicas as usize - 1))) % replicas as usize;
            states[to].merge(&snapshot, coin);
        }
        merges_left -= count;
    }
    states.iter().map(|s| s.time_max()).sum()
}

fn criterion_benches(c: &mut Criterion) {
    let scenario = reference();
    let outcome = simulate(&scenario, 1);
    let work = Work {
        writes: outcome.updates.len() as u64,
        merges: outcome.messages.delivered,
    };
    let mut group = c.benchmark_group("reference");
    group.throughput(criterion::Throughput::Elements(outcome.events));
    group.bench_function("simulator", |b| {
        b.iter(|| simulate(black_box(&scenario), black_box(1)).events)
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
    let scenario = reference();
    let seeds = 0..50u64;
    let mut events = 0u64;
    let mut works = Vec::new();
    // Warm up once so that both loops run with warm caches.
    black_box(simulate(&scenario, 0).events);
    let started = Instant::now();
    for seed in seeds.clone() {
        let outcome = simulate(&scenario, seed);
        events += outcome.events;
        works.push(Work {
            writes: outcome.updates.len() as u64,
            merges: outcome.messages.delivered,
        });
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
