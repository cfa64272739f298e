//! Each adapter, used correctly, converges under a hostile network over a range of seeds: drops
//! (repaired by anti-entropy), duplicates, reordering and a late joiner that gets a snapshot.

mod common;

use common::{hostile_causal, hostile_ops, hostile_state};
use converge::checker::judge;
use converge::crdt::OpCrdt;
use converge::netsim::Scenario;
use converge::verify::{Summary, Verify};
use converge_example_third_party::{AutomergeMap, Counter, LwwRegisters, OrSet};

/// Verifies, then checks the runs were not vacuous: every seed exercised concurrent writes to one
/// key, and the late joiner caught up on the first seed.
fn converges<C: OpCrdt>(
    scenario: Scenario,
    make: impl Fn(u32) -> C + Clone + 'static,
    seeds: std::ops::Range<u64>,
) -> Summary {
    let summary = Verify::new(scenario.clone(), make.clone())
        .seeds(seeds)
        .assert_converges();
    assert_eq!(
        summary.runs_with_conflicts, summary.seeds,
        "some run had no conflict"
    );
    let report = judge(&scenario, 0, &make).expect("valid scenario").report;
    assert_eq!(report.coverage.late_joins_caught_up, 1, "{report:?}");
    assert!(report.messages.dropped > 0 && report.messages.duplicated > 0);
    summary
}

#[test]
fn crdts_lwwreg_with_unique_markers_converges_with_state_broadcast() {
    converges(
        hostile_state("crdts-lwwreg-state"),
        LwwRegisters::new,
        0..100,
    );
}

#[test]
fn crdts_lwwreg_with_unique_markers_converges_with_op_broadcast() {
    converges(hostile_ops("crdts-lwwreg-ops"), LwwRegisters::new, 0..100);
}

#[test]
fn crdts_orswot_converges_with_state_broadcast() {
    converges(hostile_state("crdts-orswot-state"), OrSet::new, 0..100);
}

/// Orswot ops need causal delivery (see `findings.rs` for what happens without it); reliable causal
/// broadcast gives it. Retransmission backs off exponentially, so this scenario loses less and
/// settles longer than the others.
#[test]
fn crdts_orswot_converges_with_reliable_causal_broadcast() {
    let mut scenario = hostile_causal("crdts-orswot-causal");
    scenario.network.drop = 0.05;
    scenario.settle = converge::netsim::SimDuration::from_secs(30);
    converges(scenario, OrSet::new, 0..50);
}

#[test]
fn crdts_gcounter_converges_with_state_broadcast() {
    converges(hostile_state("crdts-gcounter-state"), Counter::new, 0..100);
}

#[test]
fn crdts_gcounter_converges_with_op_broadcast() {
    converges(hostile_ops("crdts-gcounter-ops"), Counter::new, 0..100);
}

/// Checks automerge itself never refused a change.
fn no_automerge_errors(scenario: &Scenario) {
    for seed in 0..5 {
        let judged = judge(scenario, seed, &AutomergeMap::new).expect("valid scenario");
        for replica in &judged.outcome.replicas {
            assert_eq!(replica.crdt.errors(), 0, "seed {seed}");
        }
    }
}

#[test]
fn automerge_converges_with_state_broadcast() {
    let scenario = hostile_state("automerge-state");
    converges(scenario.clone(), AutomergeMap::new, 0..30);
    no_automerge_errors(&scenario);
}

#[test]
fn automerge_converges_with_op_broadcast() {
    let scenario = hostile_ops("automerge-ops");
    converges(scenario.clone(), AutomergeMap::new, 0..30);
    no_automerge_errors(&scenario);
}
