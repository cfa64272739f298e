//! What the harness finds in the third-party CRDTs, pinned as regression tests. Each finding has a
//! law check or a direct demonstration, a seeded run over the hostile network that fails (the
//! failing seed is printed with the failure), and its minimal counterexample as data in
//! `tests/counterexamples/`.

mod common;

use std::path::Path;

use common::{hostile_ops, hostile_state};
use converge::checker::{judge, Oracle};
use converge::crdt::{FixedCoin, Intent, OpCrdt, Stamp, StateCrdt};
use converge::netsim::{Scenario, Verdict};
use converge::verify::{Failure, Verify};
use converge_example_third_party::{AutomergeMap, LwwRegisters, OrSet};
use crdts::{lwwreg, CmRDT, CvRDT, LWWReg};

fn counterexample(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/counterexamples")
        .join(format!("{name}.toml"));
    converge::scenario_file::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `verify`, expects a failure with `verdict`, prints it (seed, oracle, minimal
/// counterexample, reproduce command) and returns it.
fn expect_failure<C: OpCrdt>(verify: Verify<C>, verdict: Verdict) -> Box<Failure> {
    let failure = verify
        .run()
        .expect("the scenario is valid")
        .expect_err("the harness must catch this");
    println!("{failure}");
    assert_eq!(failure.report.verdict, verdict, "{failure}");
    let message = failure.to_string();
    assert!(message.contains(&format!("seed {}", failure.seed)));
    assert!(message.contains("CONVERGE_SEED="));
    failure
}

// --- Finding 1: crdts' LWWReg merge is not commutative when two writes carry equal markers. ---
//
// crdts documents that a marker "must grow monotonically *and* must be globally unique", and offers
// `validate_merge` to detect a clash, but `merge` itself resolves a clash by keeping the local value.
// A marker of a counter alone, or (counter, replica id) with two replicas sharing an id, breaks the
// precondition silently.

/// The law check, on crdts' type itself: two registers with marker (1, 0) and values 1 and 2.
#[test]
fn lwwreg_equal_markers_merge_is_not_commutative() {
    let a = LWWReg {
        val: 1u64,
        marker: (1u64, 0u32),
    };
    let b = LWWReg {
        val: 2u64,
        marker: (1u64, 0u32),
    };
    let mut a_then_b = a.clone();
    a_then_b.merge(b.clone());
    let mut b_then_a = b.clone();
    b_then_a.merge(a.clone());
    assert_eq!(a_then_b.val, 1);
    assert_eq!(b_then_a.val, 2);
    assert_ne!(a_then_b, b_then_a, "merge(a, b) != merge(b, a)");
    // crdts can tell, if asked.
    assert_eq!(
        a.validate_merge(&b),
        Err(lwwreg::Validation::ConflictingMarker)
    );
    // Op-based, the same: whichever write a replica applies first stays.
    let mut x = a.clone();
    x.apply(b.clone());
    assert_eq!(x.val, 1);
}

/// The same law check through the adapter: two replicas with markers of the counter alone write
/// key 0 at stamp time 1; merging both ways gives different states.
#[test]
fn lwwreg_counter_only_adapter_merge_is_not_commutative() {
    let mut coin = FixedCoin(false);
    let mut left = LwwRegisters::counter_only();
    let mut right = LwwRegisters::counter_only();
    let write_left = left.prepare(&Intent::Put { key: 0, value: 1 }, Stamp::new(1, 0));
    let write_right = right.prepare(&Intent::Put { key: 0, value: 2 }, Stamp::new(1, 1));
    left.apply(&write_left, &mut coin);
    right.apply(&write_right, &mut coin);
    let mut left_right = left.clone();
    left_right.merge(&right, &mut coin);
    let mut right_left = right.clone();
    right_left.merge(&left, &mut coin);
    assert_ne!(left_right.view(), right_left.view());
    assert_eq!(left_right.view().get(&0), Some(&1));
    assert_eq!(right_left.view().get(&0), Some(&2));

    // With unique markers (site = replica id) the same two writes commute.
    let mut left = LwwRegisters::new(0);
    let mut right = LwwRegisters::new(1);
    let write_left = left.prepare(&Intent::Put { key: 0, value: 1 }, Stamp::new(1, 0));
    let write_right = right.prepare(&Intent::Put { key: 0, value: 2 }, Stamp::new(1, 1));
    left.apply(&write_left, &mut coin);
    right.apply(&write_right, &mut coin);
    let mut left_right = left.clone();
    left_right.merge(&right, &mut coin);
    let mut right_left = right.clone();
    right_left.merge(&left, &mut coin);
    assert_eq!(left_right, right_left);
}

/// Through the harness: markers of the counter alone diverge on the first seed of the hostile
/// state-broadcast scenario.
#[test]
fn lwwreg_counter_only_markers_diverge_in_the_harness() {
    let failure = expect_failure(
        Verify::new(hostile_state("crdts-lwwreg-counter-only"), |_| {
            LwwRegisters::counter_only()
        })
        .seeds(0..50),
        Verdict::Diverges,
    );
    assert_eq!(failure.seed, 0);
    assert_eq!(
        failure.report.violations[0].oracle,
        Oracle::StrongConvergence
    );
    assert!(failure.shrunk.is_some());
}

/// Through the harness: (counter, replica id) markers where replicas 0 and 2 (and 1 and 3) share an
/// id diverge on the first seed too.
#[test]
fn lwwreg_colliding_replica_ids_diverge_in_the_harness() {
    let failure = expect_failure(
        Verify::new(hostile_state("crdts-lwwreg-colliding-ids"), |replica| {
            LwwRegisters::new(replica % 2)
        })
        .seeds(0..50)
        .without_shrinking(),
        Verdict::Diverges,
    );
    assert_eq!(failure.seed, 0);
}

/// The minimal counterexample: two replicas, one concurrent write each, equal markers.
#[test]
fn lwwreg_equal_markers_minimal_counterexample() {
    let scenario = counterexample("lwwreg-equal-markers");
    let report = judge(&scenario, 0, &|_| LwwRegisters::counter_only())
        .unwrap()
        .report;
    assert_eq!(report.verdict, Verdict::Diverges);
    assert!(report.met_expectation);
    assert_eq!(report.updates, 2);
    let views: Vec<String> = report
        .replicas
        .iter()
        .map(|r| r.snapshot.view.to_string())
        .collect();
    assert_eq!(views, [r#"{"0":1}"#, r#"{"0":2}"#]);
    // The same two writes with unique markers converge.
    let fixed = judge(&scenario, 0, &LwwRegisters::new).unwrap().report;
    assert_eq!(fixed.verdict, Verdict::Converges);
}

// --- Finding 2: crdts' Orswot ops delivered out of their origin's order lose an add for good. ---
//
// `Orswot::apply(Op::Add)` ignores a dot its clock already covers, and crdts documents that ops
// "must be replayed in the exact order they were produced". Over fire-and-forget op broadcast the
// network reorders them; the lost add is not repaired by anti-entropy: `Orswot::merge` treats the
// missing entry as "seen and removed" and removes it from the origin as well.

#[test]
fn orswot_ops_out_of_order_diverge_in_the_harness() {
    let failure = expect_failure(
        Verify::new(hostile_ops("crdts-orswot-op-broadcast"), OrSet::new).seeds(0..50),
        Verdict::Diverges,
    );
    assert_eq!(failure.seed, 0);
    let shrunk = failure.shrunk.as_ref().expect("shrunk");
    assert_eq!(shrunk.minimal.writes, 2, "{failure}");
}

#[test]
fn orswot_ops_out_of_order_minimal_counterexample() {
    let scenario = counterexample("orswot-ops-out-of-order");
    let judged = judge(&scenario, 0, &OrSet::new).unwrap();
    let report = judged.report;
    assert_eq!(report.verdict, Verdict::Diverges);
    assert!(report.met_expectation);
    assert_eq!(report.updates, 2);
    // Both replicas end with {1}: the add of 0 is lost everywhere, the origin included, and the
    // intent oracle says so.
    for replica in &judged.outcome.replicas {
        assert_eq!(replica.crdt.view().into_iter().collect::<Vec<_>>(), [1]);
    }
    assert!(report
        .violations
        .iter()
        .any(|v| v.oracle == Oracle::Intent && v.detail.contains("sequential specification")));
}

// --- Finding 3 (in the adapter, not in automerge): a held-back change must travel with the state. ---
//
// automerge holds back a change whose dependencies it has not seen. `Automerge::merge` carries only
// applied changes, so an adapter whose state is just the document loses track of held-back
// changes: the replica that merges such a state is counted as having them and never gets them.

#[test]
fn automerge_adapter_forgetting_waiting_changes_diverges_in_the_harness() {
    let failure = expect_failure(
        Verify::new(
            hostile_ops("automerge-forgetting-waiting"),
            AutomergeMap::forgetting_waiting,
        )
        .seeds(0..50)
        .without_shrinking(),
        Verdict::Diverges,
    );
    // Seed 2: since duplicates reach `apply` as on a real network, the adapter is handed every
    // copy of a change, and seeds 0 and 1 no longer lose a held-back change for good; seed 2
    // still does.
    assert_eq!(failure.seed, 2);
}

#[test]
fn automerge_adapter_forgetting_waiting_changes_minimal_counterexample() {
    let scenario = counterexample("automerge-forgetting-waiting");
    let naive = judge(&scenario, 0, &AutomergeMap::forgetting_waiting)
        .unwrap()
        .report;
    assert_eq!(naive.verdict, Verdict::Diverges);
    assert!(naive.met_expectation);
    // The adapter that keeps waiting changes in its state converges on the same run.
    let fixed = judge(&scenario, 0, &AutomergeMap::new).unwrap().report;
    assert_eq!(fixed.verdict, Verdict::Converges);
}
