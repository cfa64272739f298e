//! The example protocols through the exhaustive model checker, as their author would check them
//! from `cargo test`: every interleaving of a small configuration, over the same protocol code
//! the simulator runs.

use converge::checker::model::{ModelCheck, NetworkKind, Verdict};
use converge::crdt::{LwwGrid, LwwGridConfig};
use converge::netsim::Topology;
use converge_example_sync_protocols::pull_sync::PullSync;
use converge_example_sync_protocols::resend::ResendUntilAcked;

fn grid() -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

#[test]
fn the_model_checker_finds_the_naive_pull_sync_skipping_a_push() {
    let check = ModelCheck::new(PullSync::naive(), |_| grid())
        .topology(Topology::Relay)
        .replicas(2);
    let report = check.run().expect("a valid configuration");
    assert_eq!(
        report.verdict,
        Verdict::Fail {
            property: "quiescent implies converged".into()
        },
        "{}",
        check.explain(&report)
    );
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    assert!(counterexample.minimal, "{}", check.explain(&report));
    // The simulator, replaying the path, finds a device that never gets the other's write.
    let replay = check.replay(counterexample).expect("the path replays");
    assert_eq!(
        replay.verdict,
        converge::netsim::Verdict::NotConverged,
        "{}",
        check.explain(&report)
    );
}

#[test]
fn the_fixed_pull_sync_passes_every_interleaving_with_a_drop() {
    // Every tick sends a push and a pull; two messages per link keep the queues from filling
    // with stale pulls, which multiply states without new behaviour.
    ModelCheck::new(PullSync::fixed(), |_| grid())
        .topology(Topology::Relay)
        .replicas(2)
        .network(NetworkKind::Lossy)
        .in_flight_max(8, 2)
        .assert_passes();
}

#[test]
fn resending_until_acknowledged_survives_a_lost_op() {
    ModelCheck::new(ResendUntilAcked::default(), |_| grid())
        .replicas(2)
        .network(NetworkKind::Lossy)
        .assert_passes();
}

#[test]
fn without_resending_a_lost_op_is_never_recovered() {
    let check = ModelCheck::new(ResendUntilAcked { resend_every_us: 0 }, |_| grid())
        .replicas(2)
        .network(NetworkKind::Lossy);
    let report = check.run().expect("a valid configuration");
    assert!(
        matches!(&report.verdict, Verdict::Fail { property } if property == "quiescent implies converged"),
        "{}",
        check.explain(&report)
    );
}

#[test]
#[ignore = "prints the guide's output"]
fn print_the_naive_pull_sync_counterexample() {
    let check = ModelCheck::new(PullSync::naive(), |_| grid())
        .topology(Topology::Relay)
        .replicas(2);
    let report = check.run().unwrap();
    println!("{}", check.explain(&report));
}
