//! The pull-sync protocol as its author would test it: the naive device is caught, with a shrunk
//! counterexample and the command that replays it; the fixed one survives drops, duplicates,
//! partitions, crashes and server outages.

use converge::crdt::{LwwGrid, LwwGridConfig};
use converge::netsim::{Scenario, SimDuration, SwarmSpec, Topology, Verdict};
use converge::verify::Verify;
use converge_example_sync_protocols::pull_sync::PullSync;

fn grid() -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

/// Four devices and a log server, writing concurrently on a healthy network.
fn devices() -> Scenario {
    let mut scenario = Scenario {
        name: "pull-sync".into(),
        replicas: 4,
        duration: SimDuration::from_secs(4),
        settle: SimDuration::from_secs(6),
        ..Scenario::default()
    };
    scenario.protocol.topology = Topology::Relay;
    scenario.workload.rate = 3.0;
    scenario
}

/// The same, with the fault mix drawn from each seed: up to 20% loss and duplication, and five
/// faults among partitions, isolations, crashes (durable or volatile), late joins and outages of
/// the server.
fn hostile() -> Scenario {
    let mut scenario = devices();
    scenario.name = "pull-sync-hostile".into();
    scenario.settle = SimDuration::from_secs(10);
    scenario.swarm = Some(SwarmSpec {
        faults: 5,
        drop_max: 0.2,
        duplicate_max: 0.2,
    });
    scenario
}

#[test]
fn the_naive_device_skips_what_others_pushed_and_is_caught() {
    let failure = Verify::new(devices(), |_| grid())
        .protocol(PullSync::naive())
        .seeds(0..20)
        .run()
        .expect("the scenario is valid")
        .expect_err("jumping to the log's end must lose ops");
    // The devices keep polling and nobody learns anything: a sync loop, past the bound of
    // messages in the quiet tail while replicas still differ.
    assert_eq!(failure.report.verdict, Verdict::SyncLoop);
    let message = failure.to_string();
    assert!(message.contains("protocol: pull-sync (naive)"), "{message}");
    assert!(message.contains("lacks"), "names who lacks what: {message}");
    assert!(
        message.contains(&format!("CONVERGE_SEED={}", failure.seed)),
        "{message}"
    );
    let shrunk = failure.shrunk.as_ref().expect("the failure shrinks");
    assert_eq!(shrunk.verdict, Verdict::SyncLoop);
    assert!(shrunk.minimal.writes < shrunk.original.writes, "{shrunk:?}");
    // Two devices writing is all it takes: one pushes while the other's pull is not back yet.
    assert!(shrunk.minimal.writes <= 3, "{message}");
    assert!(
        shrunk.scripted,
        "the counterexample replays without the random generator"
    );
}

#[test]
fn the_fixed_device_converges_under_a_hostile_network() {
    let verify = Verify::new(hostile(), |_| grid())
        .protocol(PullSync::fixed())
        .seeds(0..150);
    let summary = verify.assert_converges();
    // CONVERGE_SEEDS widens the range (.ci/run runs 10,000 seeds).
    let seeds = verify.effective_seeds().expect("a valid range");
    assert_eq!(summary.seeds, seeds.end - seeds.start);
    assert!(
        summary.runs_with_conflicts > 0,
        "the runs exercised concurrent writes"
    );
}
