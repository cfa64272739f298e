//! The built-in types' specifications over intents, end to end: a grid's configuration is its
//! replica factory and carries the specification (so does `RgaReplicas` for the list), so that
//! `Verify` and scenario files check them against their documented semantics rather than against
//! a replay of their own ops.

use converge::checker::oracles::Oracle;
use converge::crdt::{
    Coin, Intent, ListOp, ListView, LwwGridConfig, OpCrdt, ReplicaId, Rga, Stamp, StateCrdt,
    TieBreak,
};
use converge::netsim::{Replicas, RgaReplicas, Specified, Verdict};
use converge::verify::Verify;

/// The pixel board's 3 x 3 grid, breaking ties with `tie_break`.
fn board(tie_break: TieBreak) -> LwwGridConfig {
    LwwGridConfig {
        rows: 3,
        cols: 3,
        tie_break,
    }
}

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
    let failure = Verify::from_file(random_tie_break_grid_file(), board(TieBreak::Random))
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
    let summary = Verify::from_file(random_tie_break_grid_file(), board(TieBreak::PeerId))
        .expect("the scenario reads")
        .seeds(500..700)
        .assert_converges();
    assert_eq!(summary.seeds, 200);
    assert!(summary.runs_with_conflicts > 0, "ties were exercised");
    assert!(summary.oracles_not_run.is_empty());
}

fn genome_file(name: &str) -> String {
    format!("{}/../../scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The built-in list with a planted bug in `prepare`: an insert is read one position further
/// right than asked (a writer that counts a character it has not drawn yet). Every replica applies
/// the same ops, so it converges, and a replay of those ops agrees with it.
#[derive(Clone, Debug, PartialEq)]
struct ShiftedInserts(Rga);

impl StateCrdt for ShiftedInserts {
    type View = ListView;

    fn merge(&mut self, other: &Self, coin: &mut dyn Coin) {
        self.0.merge(&other.0, coin);
    }

    fn view(&self) -> ListView {
        self.0.view()
    }

    fn time_max(&self) -> u64 {
        self.0.time_max()
    }
}

impl OpCrdt for ShiftedInserts {
    type Intent = Intent;
    type Op = ListOp;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> ListOp {
        let read = match *intent {
            Intent::Put { key, value } => Intent::Put {
                key: key + 1,
                value,
            },
            remove => remove,
        };
        self.0.prepare(&read, stamp)
    }

    fn apply(&mut self, op: &ListOp, coin: &mut dyn Coin) {
        self.0.apply(op, coin);
    }
}

/// The shifted list checked against the list's specification, as a user would wire it.
#[derive(Clone, Copy)]
struct AgainstTheListSpecification;

impl Replicas<ShiftedInserts> for AgainstTheListSpecification {
    fn make(&self, _replica: ReplicaId, _incarnation: u32) -> ShiftedInserts {
        ShiftedInserts(Rga::new())
    }

    fn specifies(&self) -> bool {
        true
    }

    fn expected_view(&self, updates: &[Specified<'_, Intent>]) -> Option<ListView> {
        Replicas::<Rga>::expected_view(&RgaReplicas, updates)
    }
}

/// The genome story under reliable causal broadcast: the shifted list converges, and only the
/// specification sees that the inserts landed where no writer asked; shrunk to one insert.
#[test]
fn a_list_whose_prepare_misreads_positions_breaks_its_specification() {
    let file = genome_file("26-genome-reliable-causal.toml");
    let replayed = Verify::from_file(&file, |_| ShiftedInserts(Rga::new()))
        .expect("the scenario reads")
        .seeds(0..20)
        .run()
        .expect("valid");
    assert!(
        replayed.is_ok(),
        "the replay of its own ops agrees with the bug"
    );
    let failure = Verify::from_file(&file, AgainstTheListSpecification)
        .expect("the scenario reads")
        .seeds(0..20)
        .run()
        .expect("valid")
        .expect_err("the inserts are misplaced");
    assert_eq!(failure.report.verdict, Verdict::IntentViolated);
    assert!(
        failure.report.violations[0]
            .detail
            .contains("differs from the specification over"),
        "{}",
        failure.report.violations[0].detail
    );
    let shrunk = failure.shrunk.as_ref().expect("shrunk");
    assert_eq!(shrunk.verdict, Verdict::IntentViolated);
    assert!(shrunk.minimal.writes <= 2, "{}", shrunk.sizes());
}

/// The shifted list's minimal counterexample, pinned as data: one replica inserts 3 into the
/// empty list, then 2 at position 1 (key 910,867 of a list of 1); the shifted `prepare` puts it
/// at position 0. Still failing with the bug, met by the correct list.
#[test]
fn shifted_inserts_minimal_counterexample_replays() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/suite/minimal/list-shifted-inserts.toml"
    );
    let failure = Verify::from_file(file, AgainstTheListSpecification)
        .expect("the pinned file loads")
        .seeds(0..1)
        .without_shrinking()
        .run()
        .expect("valid scenario")
        .expect_err("the insert still lands one position off");
    assert_eq!(failure.report.verdict, Verdict::IntentViolated);
    let states = &failure.report.violations[0].states;
    assert_eq!(
        states[0].view,
        serde_json::json!([2, 3]),
        "what the list shows"
    );
    assert_eq!(states[1].view, serde_json::json!([3, 2]), "what was asked");
    Verify::from_file(file, RgaReplicas)
        .expect("the pinned file loads")
        .seeds(0..1)
        .assert_converges();
}
