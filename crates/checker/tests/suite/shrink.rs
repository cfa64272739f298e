//! Shrinking round trips: a failing seeded run shrinks to a smaller scenario that fails the same
//! way, and its scripted form replays to the same violation without the random generator.

use converge_checker::{judge_builtin, shrink_builtin};
use converge_crdt::{ClockKind, LwwGridConfig, TieBreak};
use converge_netsim::{CrdtSpec, Scenario, SimDuration, Verdict};

fn keep_local_grid() -> Scenario {
    let mut scenario = Scenario {
        name: "keep-local-grid".into(),
        replicas: 4,
        ..Scenario::default()
    };
    scenario.crdt = CrdtSpec::LwwGrid(LwwGridConfig {
        tie_break: TieBreak::KeepLocal,
        ..Default::default()
    });
    scenario.clock = ClockKind::PerKeyCounter;
    scenario.duration = SimDuration::from_secs(5);
    scenario.settle = SimDuration::from_secs(5);
    scenario.workload.rate = 4.0;
    scenario.workload.keys = 3;
    scenario.network.drop = 0.05;
    scenario
}

#[test]
fn a_failing_run_shrinks_to_a_scripted_scenario_that_replays_the_violation() {
    let scenario = keep_local_grid();
    let seed = (0..30)
        .find(|seed| judge_builtin(&scenario, *seed).unwrap().verdict == Verdict::Diverges)
        .expect("keep-local diverges on some seed");
    let shrunk = shrink_builtin(&scenario, seed)
        .unwrap()
        .expect("a failing run shrinks");
    assert_eq!(shrunk.verdict, Verdict::Diverges);
    assert!(
        shrunk.minimal.writes < shrunk.original.writes,
        "{:?} -> {:?}",
        shrunk.original,
        shrunk.minimal
    );
    assert!(
        shrunk.minimal.writes >= 2,
        "a tie needs two writes: {:?}",
        shrunk.minimal
    );
    assert!(shrunk.minimal.replicas <= 3, "{:?}", shrunk.minimal);
    assert!(
        shrunk.scripted,
        "the minimal run should replay in scripted form"
    );

    // The scripted scenario replays to the same violation with any seed: nothing is random.
    for replay_seed in [seed, seed + 1, 12_345] {
        let replay = judge_builtin(&shrunk.scenario, replay_seed).unwrap();
        assert_eq!(replay.verdict, Verdict::Diverges);
        assert_eq!(
            replay.trace_hash, shrunk.report.trace_hash,
            "a scripted run ignores the seed"
        );
    }
}

#[test]
fn a_converging_run_has_nothing_to_shrink() {
    let mut scenario = keep_local_grid();
    scenario.crdt = CrdtSpec::LwwGrid(LwwGridConfig::default());
    scenario.network.drop = 0.0;
    assert!(shrink_builtin(&scenario, 0).unwrap().is_none());
}

/// Regression (issue 17): a failing swarm run whose drawn faults, written down, break the rules
/// between faults (two joins of one replica, overlapping crashes) could not be materialized once
/// validation refused them, and shrank no further than its swarm form. It is materialized into
/// the plan the simulator ran, and shrinks to a scenario without swarm mode.
#[test]
fn a_swarm_run_with_overlapping_draws_still_shrinks_to_plain_faults() {
    let mut scenario = keep_local_grid();
    scenario.swarm = Some(converge_netsim::SwarmSpec {
        faults: 8,
        ..Default::default()
    });
    let make = |_| {
        converge_crdt::LwwGrid::new(LwwGridConfig {
            tie_break: TieBreak::KeepLocal,
            ..Default::default()
        })
    };
    let seed = (0..60)
        .find(|seed| {
            let judged = converge_checker::judge::judge(&scenario, *seed, &make).unwrap();
            let mut written = scenario.clone();
            written.faults = judged.outcome.faults.clone();
            written.swarm = None;
            judged.report.verdict == Verdict::Diverges && written.validate().is_err()
        })
        .expect("some diverging seed draws faults that are refused as written");
    let shrunk = shrink_builtin(&scenario, seed)
        .unwrap()
        .expect("a failing run shrinks");
    assert_eq!(shrunk.verdict, Verdict::Diverges);
    assert!(
        shrunk.scenario.swarm.is_none(),
        "seed {seed}: materialized, no longer drawn from the seed"
    );
    shrunk
        .scenario
        .validate()
        .expect("the minimal scenario is valid");
    let replay = judge_builtin(&shrunk.scenario, seed).unwrap();
    assert_eq!(replay.verdict, Verdict::Diverges);
}
