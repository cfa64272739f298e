//! The example counters put through converge's `cargo test` API.

use converge::checker::CloneProbe;
use converge::netsim::{End, Scenario, SimDuration, Verdict};
use converge::verify::{Verify, VerifyError};
use converge_example_counter::{GCounter, SharedCounter, SummingCounter};

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

/// A failure shows its evidence: the replicas' views side by side at the event where they split,
/// in the original run and in the minimal counterexample.
#[test]
fn a_failure_shows_the_differing_views() {
    let failure = Verify::new(duplicating_network(), |_| SummingCounter::default())
        .seeds(0..50)
        .run()
        .expect("the scenario is valid")
        .expect_err("double counting must be caught");
    let message = failure.to_string();
    println!("{message}");
    assert!(message.contains("\nevidence (after event "), "{message}");
    assert!(message.contains("\n  evidence (after event "), "{message}");
    let [a, b] = failure.report.violations[0].replicas[..] else {
        panic!("strong convergence names two replicas: {message}");
    };
    for replica in [a, b] {
        assert!(
            message.contains(&format!("\n  replica {replica}, ")),
            "{message}"
        );
    }
}

/// Regression (issue 15): a counterexample printed for a user's type claimed the built-in
/// `[crdt] kind = "lww-grid"` and `[expect] verdict = "diverges"`; saved as the guide said and run
/// with `assert_converges`, the regression test then passed while the bug was present.
#[test]
fn regression_a_saved_counterexample_fails_while_the_bug_is_present() {
    let failure = Verify::new(duplicating_network(), |_| SummingCounter::default())
        .seeds(0..50)
        .run()
        .expect("the scenario is valid")
        .expect_err("double counting must be caught");
    let file = failure.counterexample_file().expect("the failure shrinks");
    assert!(!file.lines().any(|line| line.trim() == "[crdt]"), "{file}");
    assert!(!file.contains("lww-grid"), "{file}");
    assert!(
        file.contains("converge_example_counter::SummingCounter"),
        "{file}"
    );
    assert!(file.contains("[expect]\nverdict = \"converges\""), "{file}");
    assert_eq!(failure.to_string().matches(&file).count(), 1);

    let path = std::env::temp_dir().join(format!(
        "converge-counterexample-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, &file).expect("a temporary file");
    let replayed = Verify::from_file(&path, |_| SummingCounter::default())
        .expect("the printed counterexample is a valid scenario file")
        .seeds(0..1)
        .without_shrinking()
        .run()
        .expect("valid");
    let fixed = Verify::from_file(&path, |_| GCounter::default())
        .expect("valid")
        .seeds(0..1)
        .run()
        .expect("valid");
    let _ = std::fs::remove_file(&path);
    let replayed = replayed.expect_err("the saved counterexample fails while the bug is present");
    assert_eq!(replayed.report.verdict, Verdict::Diverges);
    assert!(fixed.is_ok(), "and passes once the merge is fixed");
}

/// Regression (issue 15): `assert_converges` read the scenario's `[expect]`, so a file expecting a
/// bug made it pass on a run that showed the bug. It asks for convergence whatever the file
/// says; `assert_expectation` asks for what the file says.
#[test]
fn regression_assert_converges_asks_for_convergence_whatever_the_file_expects() {
    let mut expecting_a_bug = duplicating_network();
    expecting_a_bug.expect.verdict = Verdict::Diverges;
    let buggy = Verify::new(expecting_a_bug.clone(), |_| SummingCounter::default()).seeds(0..1);
    let failure = buggy
        .run()
        .expect("valid")
        .expect_err("the run diverges, which is not convergence");
    assert_eq!(failure.report.verdict, Verdict::Diverges);
    assert!(
        failure
            .to_string()
            .contains("expected converges, got diverges\n(assert_converges asks for convergence"),
        "{failure}"
    );
    buggy.assert_expectation();

    let correct = Verify::new(expecting_a_bug, |_| GCounter::default()).seeds(0..1);
    correct.assert_converges();
    let failure = correct
        .run_expectation()
        .expect("valid")
        .expect_err("the file expects a divergence that the correct counter does not show");
    assert!(
        failure.to_string().starts_with(
            "scenario \"counter-duplicating\" seed 0: expected diverges, got converges"
        ),
        "{failure}"
    );
}

/// `all_failures` runs the whole range and counts every failing seed.
#[test]
fn every_failing_seed_is_counted_on_request() {
    let failure = Verify::new(duplicating_network(), |_| SummingCounter::default())
        .seeds(0..20)
        .without_shrinking()
        .all_failures()
        .run()
        .expect("valid")
        .expect_err("double counting must be caught");
    let seeds = Verify::new(duplicating_network(), |_| SummingCounter::default())
        .seeds(0..20)
        .effective_seeds()
        .expect("a valid range");
    assert_eq!(failure.summary.seeds, seeds.end - seeds.start);
    assert!(failure.ran_every_seed);
    assert_eq!(failure.failing_seeds[0].0, failure.seed);
    assert!(failure
        .failing_seeds
        .windows(2)
        .all(|pair| pair[0].0 < pair[1].0));
    let message = failure.to_string();
    assert!(
        message.contains(&format!(
            "\nfailing seeds: {} of {} (",
            failure.failing_seeds.len(),
            failure.summary.seeds
        )),
        "{message}"
    );
    assert!(message.contains("\ncoverage: "), "{message}");
}

/// A passing summary says what the seeds exercised: conflicts, and the network's duplicates and
/// reorders too.
#[test]
fn the_summary_carries_the_coverage_counts() {
    let summary = Verify::new(duplicating_network(), |_| GCounter::default())
        .seeds(0..20)
        .assert_converges();
    assert!(summary.coverage.duplicate_deliveries > 0, "{summary}");
    assert!(summary.coverage.reordered_deliveries > 0, "{summary}");
    assert_eq!(
        summary.coverage.retransmissions, 0,
        "state broadcast never resends"
    );
    let line = summary.to_string();
    assert!(line.contains(" duplicate deliveries, "), "{line}");
    assert!(line.contains(" reordered deliveries, "), "{line}");
}

/// Regression (issue 15): a state whose `Clone` shares a handle raised false alarms, blamed on a
/// merge that is right. The clone probe (on in debug builds, here asked for in any build) names
/// the shallow copy at the first event that writes.
#[test]
fn regression_a_shallow_clone_is_named_not_blamed_on_the_merge() {
    let outcome = converge::netsim::run(
        &duplicating_network(),
        0,
        &|_| SharedCounter::default(),
        &mut CloneProbe::always(),
    )
    .expect("valid");
    let End::Panicked {
        message,
        after_events,
    } = &outcome.end
    else {
        panic!("the probe must catch the shared handle: {:?}", outcome.end);
    };
    assert!(
        message.contains("SharedCounter's Clone is not a deep copy"),
        "{message}"
    );
    assert!(*after_events <= 1, "caught at the first write: {message}");

    // The same counter with a deep copy passes the probe.
    let outcome = converge::netsim::run(
        &duplicating_network(),
        0,
        &|_| GCounter::default(),
        &mut CloneProbe::always(),
    )
    .expect("valid");
    assert_eq!(outcome.end, End::Completed);
}

/// `Verify` names a state that is a shared handle as a whole before its first run, in every
/// build, rather than blaming the merge.
#[test]
fn verify_names_a_shallow_clone_before_it_runs() {
    let error = Verify::new(duplicating_network(), |_| SharedCounter::default())
        .seeds(0..50)
        .run()
        .expect_err("a shared handle is refused");
    let VerifyError::ShallowClone(shallow) = &error else {
        panic!("{error}");
    };
    assert_eq!(shallow.type_name, "converge_example_counter::SharedCounter");
    assert!(
        error
            .to_string()
            .starts_with("converge_example_counter::SharedCounter's Clone is not a deep copy"),
        "{error}"
    );
}
