//! The built-in grid's specification over intents, end to end: a grid's configuration is its
//! replica factory and carries the specification, so that `Verify` and scenario files check the
//! grid against its documented semantics rather than against a replay of its own ops.

use converge::checker::oracles::Oracle;
use converge::crdt::{LwwGridConfig, TieBreak};
use converge::netsim::Verdict;
use converge::verify::Verify;

fn random_tie_break_grid_file() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/01-grid-random-tiebreak.toml"
    )
}

/// Seed 538 of the pixel board with random tie-breaks: every replica ends with the same grid,
/// but cell 2 holds the write that lost its tie (equal per-cell counters, the lower replica id),
/// because every receiver's coin happened to keep it. Converged, and wrong: the specification
/// says the tie goes to the greater replica id, value 108.
#[test]
fn a_grid_that_converges_on_the_losing_write_breaks_its_specification() {
    let random = LwwGridConfig {
        rows: 3,
        cols: 3,
        tie_break: TieBreak::Random,
    };
    let failure = Verify::from_file(random_tie_break_grid_file(), random)
        .expect("the scenario reads")
        .seeds(538..539)
        .without_shrinking()
        .run()
        .expect("valid")
        .expect_err("the replicas agree on the wrong write");
    assert_eq!(failure.report.verdict, Verdict::IntentViolated);
    let violation = &failure.report.violations[0];
    assert_eq!(violation.oracle, Oracle::Intent);
    assert!(
        violation.detail.contains("differs from the specification"),
        "{}",
        violation.detail
    );
    let cell = |state: usize| violation.states[state].view["cells"][2].clone();
    assert_eq!(cell(0), 537, "what the replicas show");
    assert_eq!(cell(1), 108, "what the specification says");
}

/// The correct grid passes the same seeds, checked against the same specification.
#[test]
fn the_correct_grid_meets_its_specification() {
    let correct = LwwGridConfig {
        rows: 3,
        cols: 3,
        tie_break: TieBreak::PeerId,
    };
    let summary = Verify::from_file(random_tie_break_grid_file(), correct)
        .expect("the scenario reads")
        .seeds(500..700)
        .assert_converges();
    assert_eq!(summary.seeds, 200);
    assert!(summary.runs_with_conflicts > 0, "ties were exercised");
    assert!(summary.oracles_not_run.is_empty());
}
