//! Pins what the exhaustive model checker finds on small configurations: which policies and
//! protocols converge, the shortest counterexamples, and the state-space sizes where they are
//! stable (complete runs with an exact canonical form are deterministic whatever the threads do).

use converge_checker::model::{
    check, unique_states_with_and_without_symmetry, CheckConfig, CheckError, CheckReport,
    CounterexampleAction, ModelCrdt, ModelProtocol, NetworkKind, Symmetry, ValueChoice, Verdict,
};
use converge_crdt::{Bias, TieBreak};

fn grid(tie_break: TieBreak) -> ModelCrdt {
    ModelCrdt::Grid { tie_break }
}

fn dict(bias: Bias, tie_break: TieBreak) -> ModelCrdt {
    ModelCrdt::Dict { bias, tie_break }
}

fn run(config: CheckConfig) -> CheckReport {
    check(&config).expect("a valid configuration")
}

fn assert_fails(report: &CheckReport, property: &str, depth: usize) {
    assert_eq!(
        report.verdict,
        Verdict::Fail {
            property: property.to_string()
        },
        "{report:#?}"
    );
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    assert!(counterexample.minimal, "{counterexample:#?}");
    assert_eq!(counterexample.depth, depth, "{:#?}", counterexample.steps);
    assert_eq!(counterexample.actions.len(), depth);
    assert_eq!(counterexample.steps.len(), depth);
}

#[test]
fn peer_id_grid_over_state_broadcast_converges_on_reliable_duplicating_and_reordering_networks() {
    // (network, replicas, writes, unique states). Re-pinned when the model came to run netsim's
    // own protocols over the protocol seam: the duplicating counts are unchanged; the others
    // grew a little because the update records are part of the state now (an op-based protocol
    // reads them), so two paths whose writes were stamped differently stay apart even after
    // every replica has overwritten those writes.
    let cases = [
        (NetworkKind::Reliable, 3, 1, 545),
        (NetworkKind::Duplicating, 3, 1, 416),
        (NetworkKind::Reordering, 3, 1, 545),
        (NetworkKind::Reliable, 2, 2, 119),
        (NetworkKind::Duplicating, 2, 2, 134),
        (NetworkKind::Reordering, 2, 2, 166),
        (NetworkKind::Reliable, 3, 2, 243_909),
        (NetworkKind::Duplicating, 3, 2, 178_900),
        // Reordering with 3 x 2 has well over half a million states: left to the benchmarks.
    ];
    // Complete runs on two threads visit exactly the states one thread visits.
    for (network, replicas, writes, unique) in cases {
        let report = run(CheckConfig {
            network,
            replicas,
            writes_per_replica: writes,
            threads: 2,
            ..Default::default()
        });
        assert_eq!(report.verdict, Verdict::Pass, "{network:?} {report:#?}");
        assert_eq!(report.symmetry, Symmetry::Off, "peer-id is not symmetric");
        assert!(report.symmetry_note.is_some());
        assert_eq!(
            report.unique_states, unique,
            "{network:?} {replicas}x{writes}"
        );
    }
}

#[test]
fn random_tie_break_breaks_strong_convergence_in_four_steps() {
    let report = run(CheckConfig {
        crdt: grid(TieBreak::Random),
        ..Default::default()
    });
    assert_fails(&report, "strong convergence", 4);
    let counterexample = report.counterexample.as_ref().unwrap();
    // Two concurrent writes at time 1, then each receiver's coin decides differently.
    assert!(matches!(
        counterexample.actions[0],
        CounterexampleAction::Write { .. }
    ));
    assert!(matches!(
        counterexample.actions[3],
        CounterexampleAction::DeliverWithCoin { .. }
    ));
    // A random tie-break flips a coin whatever the replicas' ids: replicas are interchangeable.
    assert_eq!(report.symmetry, Symmetry::On);
    assert!(report.symmetry_note.is_none());
}

#[test]
fn keep_local_grid_and_dict_break_strong_convergence_in_four_steps() {
    for crdt in [
        grid(TieBreak::KeepLocal),
        dict(Bias::Add, TieBreak::KeepLocal),
        dict(Bias::Remove, TieBreak::KeepLocal),
    ] {
        let report = run(CheckConfig {
            crdt,
            ..Default::default()
        });
        assert_fails(&report, "strong convergence", 4);
    }
}

#[test]
fn peer_id_dict_converges_for_both_biases() {
    for bias in [Bias::Add, Bias::Remove] {
        let report = run(CheckConfig {
            crdt: dict(bias, TieBreak::PeerId),
            ..Default::default()
        });
        assert_eq!(report.verdict, Verdict::Pass, "{bias:?}");
        // 3,779 before the model ran over the protocol seam; see the grid's counts above.
        assert_eq!(report.unique_states, 3_897, "{bias:?}");
    }
}

#[test]
fn one_dropped_op_is_never_recovered() {
    let report = run(CheckConfig {
        protocol: ModelProtocol::OpBroadcast,
        network: NetworkKind::Lossy,
        ..Default::default()
    });
    assert_fails(&report, "quiescent implies converged", 9);
    let counterexample = report.counterexample.as_ref().unwrap();
    assert!(counterexample
        .actions
        .iter()
        .any(|a| matches!(a, CounterexampleAction::Drop { .. })));
}

#[test]
fn push_on_change_state_broadcast_loses_the_last_write_to_one_drop() {
    // The dropped state is the last one its sender ever sends, so nothing carries it later:
    // state broadcast without anti-entropy does not survive a single loss either.
    for network in [NetworkKind::Lossy, NetworkKind::LossyDuplicating] {
        let report = run(CheckConfig {
            network,
            ..Default::default()
        });
        assert_fails(&report, "quiescent implies converged", 7);
    }
}

#[test]
fn anti_entropy_recovers_from_a_drop() {
    let report = run(CheckConfig {
        protocol: ModelProtocol::AntiEntropy,
        network: NetworkKind::Lossy,
        replicas: 2,
        writes_per_replica: 2,
        ..Default::default()
    });
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
}

#[test]
fn rga_list_converges_over_op_and_state_broadcast_on_reliable_and_duplicating_networks() {
    // (protocol, network, replicas, writes, unique states). Writes are inserts or deletes at
    // positions; two replicas' first writes meet at equal stamp times (the conflict the pass
    // requires), and a duplicating network hands every op to `apply` again.
    let cases = [
        (
            ModelProtocol::OpBroadcast,
            NetworkKind::Reliable,
            2,
            2,
            1_275,
        ),
        (
            ModelProtocol::OpBroadcast,
            NetworkKind::Duplicating,
            2,
            2,
            2_101,
        ),
        (
            ModelProtocol::OpBroadcast,
            NetworkKind::Reliable,
            3,
            1,
            3_369,
        ),
        (
            ModelProtocol::OpBroadcast,
            NetworkKind::Duplicating,
            3,
            1,
            3_369,
        ),
        (
            ModelProtocol::StateBroadcast,
            NetworkKind::Reliable,
            2,
            2,
            1_115,
        ),
        (
            ModelProtocol::StateBroadcast,
            NetworkKind::Duplicating,
            2,
            2,
            1_585,
        ),
    ];
    for (protocol, network, replicas, writes, unique) in cases {
        let report = run(CheckConfig {
            crdt: ModelCrdt::Rga,
            protocol,
            network,
            replicas,
            writes_per_replica: writes,
            threads: 2,
            ..Default::default()
        });
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "{protocol:?} {network:?} {report:#?}"
        );
        assert_eq!(
            report.unique_states, unique,
            "{protocol:?} {network:?} {replicas}x{writes}"
        );
    }
}

#[test]
fn rga_list_under_op_broadcast_never_recovers_one_dropped_op() {
    let report = run(CheckConfig {
        crdt: ModelCrdt::Rga,
        protocol: ModelProtocol::OpBroadcast,
        network: NetworkKind::Lossy,
        replicas: 2,
        ..Default::default()
    });
    assert_fails(&report, "quiescent implies converged", 4);
    let counterexample = report.counterexample.as_ref().unwrap();
    assert!(counterexample
        .actions
        .iter()
        .any(|a| matches!(a, CounterexampleAction::Drop { .. })));
    assert_eq!(
        counterexample
            .liveness
            .as_deref()
            .map(|l| l.starts_with("stalled")),
        Some(true)
    );
}

#[test]
fn rga_list_recovers_from_a_drop_under_anti_entropy() {
    let report = run(CheckConfig {
        crdt: ModelCrdt::Rga,
        protocol: ModelProtocol::AntiEntropy,
        network: NetworkKind::Lossy,
        replicas: 2,
        writes_per_replica: 2,
        ..Default::default()
    });
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
}

#[test]
fn symmetry_reduces_interchangeable_replicas_and_says_where_it_cannot() {
    let config = CheckConfig {
        crdt: grid(TieBreak::KeepLocal),
        network: NetworkKind::LossyDuplicating,
        ..Default::default()
    };
    let space = unique_states_with_and_without_symmetry(&config).unwrap();
    assert!(space.symmetry_applied && space.complete);
    // 2,834 states; 483 orbits under the 6 renamings of 3 replicas (nearly every orbit is
    // whole: the replicas rarely hold the same thing).
    assert_eq!((space.with_symmetry, space.without_symmetry), (483, 2_834));
    let report = run(config);
    assert_eq!(report.symmetry, Symmetry::On);
    assert_eq!(report.symmetry_note, None);
    for (unsound, why) in [
        (
            CheckConfig {
                crdt: grid(TieBreak::PeerId),
                ..config
            },
            "peer-id",
        ),
        (
            CheckConfig {
                protocol: ModelProtocol::AntiEntropy,
                ..config
            },
            "anti-entropy",
        ),
    ] {
        let space = unique_states_with_and_without_symmetry(&unsound).unwrap();
        assert!(!space.symmetry_applied);
        assert_eq!(space.with_symmetry, space.without_symmetry);
        let report = run(unsound);
        assert_eq!(report.symmetry, Symmetry::Off, "{why}");
        assert!(
            report
                .symmetry_note
                .as_deref()
                .is_some_and(|note| note.contains(why)),
            "{why}: {:?}",
            report.symmetry_note
        );
    }
}

/// Symmetry reduction is sound where it is applied (`model/symmetry.rs` argues why): on every
/// configuration this file pins, reduced and unreduced runs reach the same verdict, and a failure
/// the same shortest counterexample length. Passing configurations are also explored whole both
/// ways, so a reduction that skipped a violating state would show up here as a different verdict.
#[test]
fn symmetry_keeps_verdicts_and_shortest_depths() {
    let base = CheckConfig::default();
    let configs = [
        CheckConfig {
            crdt: grid(TieBreak::Random),
            ..base
        },
        CheckConfig {
            crdt: grid(TieBreak::KeepLocal),
            network: NetworkKind::LossyDuplicating,
            ..base
        },
        CheckConfig {
            crdt: grid(TieBreak::KeepLocal),
            values: ValueChoice::AnyOf(2),
            ..base
        },
        CheckConfig {
            crdt: dict(Bias::Add, TieBreak::KeepLocal),
            ..base
        },
        CheckConfig {
            crdt: dict(Bias::Remove, TieBreak::KeepLocal),
            ..base
        },
        CheckConfig {
            crdt: dict(Bias::Remove, TieBreak::Random),
            values: ValueChoice::AnyOf(2),
            ..base
        },
        CheckConfig {
            protocol: ModelProtocol::OpBroadcast,
            network: NetworkKind::Lossy,
            crdt: grid(TieBreak::KeepLocal),
            ..base
        },
        CheckConfig {
            network: NetworkKind::Lossy,
            crdt: grid(TieBreak::KeepLocal),
            ..base
        },
        CheckConfig {
            network: NetworkKind::LossyDuplicating,
            crdt: grid(TieBreak::Random),
            ..base
        },
        // Every replica puts the same value, so ties show no divergence and the failures are
        // the deeper ones of lost messages.
        CheckConfig {
            protocol: ModelProtocol::OpBroadcast,
            network: NetworkKind::Lossy,
            crdt: grid(TieBreak::KeepLocal),
            values: ValueChoice::AnyOf(1),
            ..base
        },
        CheckConfig {
            network: NetworkKind::LossyDuplicating,
            crdt: dict(Bias::Remove, TieBreak::Random),
            values: ValueChoice::AnyOf(1),
            ..base
        },
        // Convergent under every order, and reduced: the pass must survive the reduction.
        CheckConfig {
            network: NetworkKind::Duplicating,
            crdt: grid(TieBreak::KeepLocal),
            values: ValueChoice::AnyOf(1),
            writes_per_replica: 2,
            ..base
        },
        CheckConfig {
            protocol: ModelProtocol::OpBroadcast,
            network: NetworkKind::Reordering,
            crdt: grid(TieBreak::KeepLocal),
            writes_per_replica: 1,
            keys: 1,
            values: ValueChoice::AnyOf(1),
            ..base
        },
        CheckConfig {
            protocol: ModelProtocol::OpBroadcast,
            network: NetworkKind::Duplicating,
            crdt: dict(Bias::Add, TieBreak::KeepLocal),
            replicas: 2,
            writes_per_replica: 2,
            keys: 1,
            ..base
        },
        // Not reduced (peer-id, anti-entropy): both runs are the same run.
        CheckConfig {
            network: NetworkKind::Lossy,
            ..base
        },
        CheckConfig {
            protocol: ModelProtocol::AntiEntropy,
            network: NetworkKind::Lossy,
            replicas: 2,
            writes_per_replica: 2,
            ..base
        },
    ];
    for config in configs {
        let reduced = run(CheckConfig {
            symmetry: Symmetry::On,
            ..config
        });
        let unreduced = run(CheckConfig {
            symmetry: Symmetry::Off,
            ..config
        });
        assert_eq!(reduced.verdict, unreduced.verdict, "{config:?}");
        assert_eq!(
            reduced
                .counterexample
                .as_ref()
                .map(|c| (c.depth, c.minimal)),
            unreduced
                .counterexample
                .as_ref()
                .map(|c| (c.depth, c.minimal)),
            "{config:?}"
        );
        if reduced.symmetry == Symmetry::On && reduced.verdict == Verdict::Pass {
            assert!(
                reduced.unique_states < unreduced.unique_states,
                "{config:?}"
            );
        }
    }
}

#[test]
fn threads_change_neither_verdicts_nor_state_counts() {
    let config = CheckConfig {
        crdt: grid(TieBreak::KeepLocal),
        network: NetworkKind::LossyDuplicating,
        ..Default::default()
    };
    for threads in [1, 2, 4] {
        let space =
            unique_states_with_and_without_symmetry(&CheckConfig { threads, ..config }).unwrap();
        assert_eq!(
            (space.with_symmetry, space.without_symmetry),
            (483, 2_834),
            "{threads} threads"
        );
        let report = run(CheckConfig { threads, ..config });
        assert_fails(&report, "strong convergence", 4);
        let lossy = run(CheckConfig {
            crdt: grid(TieBreak::PeerId),
            threads,
            ..config
        });
        assert_fails(&lossy, "quiescent implies converged", 7);
    }
}

#[test]
fn symmetry_does_not_change_the_verdict() {
    for values in [ValueChoice::Own, ValueChoice::AnyOf(2)] {
        for symmetry in [Symmetry::On, Symmetry::Off] {
            let report = run(CheckConfig {
                crdt: grid(TieBreak::KeepLocal),
                values,
                symmetry,
                ..Default::default()
            });
            assert_fails(&report, "strong convergence", 4);
        }
    }
}

#[test]
fn a_run_that_hits_its_depth_bound_is_inconclusive() {
    let report = run(CheckConfig {
        max_depth: Some(2),
        ..Default::default()
    });
    assert!(
        matches!(report.verdict, Verdict::Inconclusive { .. }),
        "{report:#?}"
    );
    assert!(report.counterexample.is_none());
}

#[test]
fn a_run_that_outlasts_its_timeout_stops_and_is_inconclusive() {
    // Far too big to finish: without the model's own deadline a single-threaded run ignored
    // stateright's timeout and explored everything.
    for threads in [1, 2] {
        let started = std::time::Instant::now();
        let report = run(CheckConfig {
            network: NetworkKind::Reordering,
            replicas: 4,
            writes_per_replica: 3,
            timeout_ms: 300,
            threads,
            ..Default::default()
        });
        assert!(
            matches!(&report.verdict, Verdict::Inconclusive { reason } if reason.contains("timed out")),
            "{:?}",
            report.verdict
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{threads} threads: stopped {:?} after a 300 ms budget",
            started.elapsed()
        );
    }
}

#[test]
fn invalid_configurations_are_refused() {
    let bad = [
        (
            CheckConfig {
                replicas: 5,
                ..Default::default()
            },
            CheckError::Replicas(5),
        ),
        (
            CheckConfig {
                replicas: 1,
                ..Default::default()
            },
            CheckError::Replicas(1),
        ),
        (
            CheckConfig {
                writes_per_replica: 0,
                ..Default::default()
            },
            CheckError::Writes { got: 0 },
        ),
        (
            CheckConfig {
                writes_per_replica: 4,
                ..Default::default()
            },
            CheckError::Writes { got: 4 },
        ),
        (
            CheckConfig {
                keys: 0,
                ..Default::default()
            },
            CheckError::Keys(0),
        ),
        (
            CheckConfig {
                values: ValueChoice::AnyOf(9),
                ..Default::default()
            },
            CheckError::Values(9),
        ),
        (
            CheckConfig {
                threads: 0,
                ..Default::default()
            },
            CheckError::Threads(0),
        ),
        (
            CheckConfig {
                timeout_ms: 0,
                ..Default::default()
            },
            CheckError::Timeout,
        ),
    ];
    for (config, error) in bad {
        assert_eq!(check(&config), Err(error.clone()));
        assert_eq!(
            unique_states_with_and_without_symmetry(&config).err(),
            Some(error)
        );
    }
}

#[test]
fn reports_serialize_to_json() {
    let report = run(CheckConfig {
        crdt: grid(TieBreak::Random),
        ..Default::default()
    });
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"]["verdict"], "fail");
    assert_eq!(json["counterexample"]["depth"], 4);
    assert_eq!(
        json["counterexample"]["actions"][3]["kind"],
        "deliver-with-coin"
    );
}
