//! The example counters put through converge's `cargo test` API.

use converge::netsim::{Scenario, SimDuration, Verdict};
use converge::verify::Verify;
use converge_example_counter::{GCounter, SummingCounter};

/// Three replicas broadcasting their state over a network that duplicates and reorders.
fn duplicating_network() -> Scenario {
    let mut scenario = Scenario {
        name: "counter-duplicating".into(),
        replicas: 3,
        ..Scenario::default()
    };
    scenario.duration = SimDuration::from_secs(3);
    scenario.settle = SimDuration::from_secs(3);
    scenario.network.duplicate = 0.2;
    scenario
}

#[test]
fn the_grow_only_counter_converges() {
    let summary = Verify::new(duplicating_network(), |_| GCounter::default())
        .seeds(0..50)
        .assert_converges();
    assert!(summary.seeds >= 1);
}

#[test]
fn the_summing_counter_is_caught() {
    let verify = Verify::new(duplicating_network(), |_| SummingCounter::default()).seeds(0..50);
    let failure = verify
        .run()
        .expect("the scenario is valid")
        .expect_err("double counting must be caught");
    assert_eq!(failure.report.verdict, Verdict::Diverges);
    let message = failure.to_string();
    assert!(
        message.contains(&format!("seed {}", failure.seed)),
        "{message}"
    );
    assert!(message.contains("CONVERGE_SEED="), "{message}");
    // The command names the package, so that it also works from the workspace root.
    assert!(
        message.contains(
            "cargo test -p converge-example-counter the_summing_counter_is_caught -- --exact"
        ),
        "{message}"
    );
    assert!(message.contains("minimal counterexample"), "{message}");
}
