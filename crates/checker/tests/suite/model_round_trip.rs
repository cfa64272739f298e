//! A model-checker counterexample becomes a scripted netsim scenario that replays to the same
//! violation: strong convergence in the model is verdict diverges in netsim, "quiescent implies
//! converged" is verdict not converged, and the replay does not depend on the seed.

use converge_checker::judge_builtin;
use converge_checker::model::{
    check, config_name, CheckConfig, CheckReport, CounterexampleAction, ModelAction, ModelCrdt,
    ModelProtocol, NetworkKind, ReplayError, ValueChoice, Verdict,
};
use converge_crdt::{Bias, TieBreak};
use converge_netsim::Verdict as RunVerdict;

fn grid(tie_break: TieBreak) -> ModelCrdt {
    ModelCrdt::Grid { tie_break }
}

fn dict(bias: Bias, tie_break: TieBreak) -> ModelCrdt {
    ModelCrdt::Dict { bias, tie_break }
}

/// The netsim verdict that stands for a model property.
fn run_verdict_of(property: &str) -> RunVerdict {
    match property {
        "strong convergence" => RunVerdict::Diverges,
        "quiescent implies converged" => RunVerdict::NotConverged,
        other => panic!("no netsim verdict stands for `{other}`"),
    }
}

/// Checks `config`, which must fail; converts the counterexample; replays it with two seeds and
/// asserts the same oracle breaks both times, with the same trace hash.
fn assert_round_trip(config: CheckConfig) -> CheckReport {
    let name = config_name(&config);
    let report = check(&config).expect("a valid configuration");
    let Verdict::Fail { property } = &report.verdict else {
        panic!("{name}: expected a failing check, got {:?}", report.verdict);
    };
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    let scenario = counterexample
        .to_scenario(&config)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(scenario.script.is_some(), "{name}: the replay is scripted");
    let first = judge_builtin(&scenario, 1).expect("the replay runs");
    let second = judge_builtin(&scenario, 987_654_321).expect("the replay runs");
    let expected = run_verdict_of(property);
    // A lost message replays to not converging, and the simulator tells which way (stalled).
    assert!(
        first.verdict.meets(expected),
        "{name}: the model found `{property}` in\n{}\nnetsim says {:?}: {:#?}",
        counterexample.steps.join("\n"),
        first.verdict,
        first.violations
    );
    assert_eq!(
        first.trace_hash, second.trace_hash,
        "{name}: a scripted replay ignores the seed"
    );
    assert_eq!(second.verdict, first.verdict);
    assert_eq!(
        first.updates,
        counterexample
            .actions
            .iter()
            .filter(|a| matches!(a, CounterexampleAction::Write { .. }))
            .count() as u64,
        "{name}: every write of the path and no other"
    );
    println!(
        "{name}: `{property}` in {} steps -> {:?}, trace {}",
        counterexample.depth, first.verdict, first.trace_hash
    );
    report
}

#[test]
fn tie_break_counterexamples_replay_to_divergence() {
    for crdt in [
        grid(TieBreak::Random),
        grid(TieBreak::KeepLocal),
        dict(Bias::Add, TieBreak::KeepLocal),
        dict(Bias::Remove, TieBreak::KeepLocal),
        dict(Bias::Remove, TieBreak::Random),
    ] {
        assert_round_trip(CheckConfig {
            crdt,
            ..Default::default()
        });
    }
    // Two writes each, any of two values, over a duplicating network and over op broadcast.
    for protocol in [ModelProtocol::StateBroadcast, ModelProtocol::OpBroadcast] {
        assert_round_trip(CheckConfig {
            crdt: grid(TieBreak::Random),
            protocol,
            network: NetworkKind::LossyDuplicating,
            replicas: 2,
            writes_per_replica: 2,
            values: ValueChoice::AnyOf(2),
            ..Default::default()
        });
    }
}

#[test]
fn lost_messages_replay_to_non_convergence() {
    for (protocol, network) in [
        (ModelProtocol::OpBroadcast, NetworkKind::Lossy),
        (ModelProtocol::OpBroadcast, NetworkKind::LossyDuplicating),
        (ModelProtocol::StateBroadcast, NetworkKind::Lossy),
        (ModelProtocol::StateBroadcast, NetworkKind::LossyDuplicating),
    ] {
        let report = assert_round_trip(CheckConfig {
            protocol,
            network,
            ..Default::default()
        });
        let counterexample = report.counterexample.unwrap();
        let scenario = counterexample.to_scenario(&report.config).unwrap();
        let run = judge_builtin(&scenario, 0).unwrap();
        assert_eq!(
            run.messages.dropped, 1,
            "exactly the one drop of the path: {:#?}",
            counterexample.steps
        );
    }
    assert_round_trip(CheckConfig {
        crdt: dict(Bias::Add, TieBreak::PeerId),
        protocol: ModelProtocol::OpBroadcast,
        network: NetworkKind::Lossy,
        replicas: 2,
        writes_per_replica: 2,
        values: ValueChoice::AnyOf(2),
        ..Default::default()
    });
    // The genome story in the small: a list's op lost to one drop.
    assert_round_trip(CheckConfig {
        crdt: ModelCrdt::Rga,
        protocol: ModelProtocol::OpBroadcast,
        network: NetworkKind::Lossy,
        replicas: 3,
        ..Default::default()
    });
}

#[test]
fn anti_entropy_exchanges_replay_as_scripted_rounds() {
    for crdt in [
        grid(TieBreak::KeepLocal),
        dict(Bias::Remove, TieBreak::Random),
    ] {
        for network in [NetworkKind::Reliable, NetworkKind::LossyDuplicating] {
            assert_round_trip(CheckConfig {
                crdt,
                protocol: ModelProtocol::AntiEntropy,
                network,
                ..Default::default()
            });
        }
    }
}

#[test]
fn the_script_carries_the_coins_of_the_path() {
    let config = CheckConfig {
        crdt: grid(TieBreak::Random),
        ..Default::default()
    };
    let report = check(&config).unwrap();
    let shortest = report.counterexample.unwrap();
    // The path's coin patterns and the readable actions say the same thing; both change.
    let with_coins = |first: bool, second: bool| {
        let mut counterexample = shortest.clone();
        let mut sides = [first, second].into_iter();
        for action in &mut counterexample.actions {
            if let CounterexampleAction::DeliverWithCoin { coins, .. } = action {
                *coins = vec![sides.next().expect("two deliveries flip a coin")];
            }
        }
        let mut sides = [first, second].into_iter();
        for step in &mut counterexample.path {
            if let ModelAction::Deliver { coins, .. } = step {
                *coins = u32::from(sides.next().expect("two deliveries flip a coin"));
            }
        }
        counterexample
    };
    // Both receivers take the incoming write: they swap values and still differ.
    let swapped = with_coins(true, true).to_scenario(&config).unwrap();
    assert_eq!(swapped.script.as_ref().unwrap().coins, vec![true, true]);
    assert_eq!(
        judge_builtin(&swapped, 0).unwrap().verdict,
        RunVerdict::Diverges
    );
    // One keeps its own write and the other takes it: they agree, so that path is no
    // counterexample and no scenario is made of it.
    assert_eq!(
        with_coins(false, true).to_scenario(&config),
        Err(ReplayError::NoViolation {
            property: "strong convergence".to_string()
        })
    );
}

#[test]
fn a_counterexample_of_another_configuration_is_refused() {
    let config = CheckConfig {
        crdt: grid(TieBreak::KeepLocal),
        ..Default::default()
    };
    let counterexample = check(&config).unwrap().counterexample.unwrap();
    let dict_config = CheckConfig {
        crdt: dict(Bias::Add, TieBreak::KeepLocal),
        protocol: ModelProtocol::OpBroadcast,
        ..config
    };
    assert!(matches!(
        counterexample.to_scenario(&dict_config),
        Err(ReplayError::NotInModel { .. })
    ));
    assert!(matches!(
        counterexample.to_scenario(&CheckConfig {
            replicas: 9,
            ..config
        }),
        Err(ReplayError::Config(_))
    ));
}

/// Every failing configuration among the small ones (3 replicas with one write, 2 with two)
/// replays to the same violation. Ignored by default: it checks 180 configurations.
#[test]
#[ignore = "checks 210 configurations; a few minutes in release"]
fn every_small_failing_configuration_round_trips() {
    let crdts = [
        grid(TieBreak::PeerId),
        grid(TieBreak::Random),
        grid(TieBreak::KeepLocal),
        dict(Bias::Add, TieBreak::KeepLocal),
        dict(Bias::Remove, TieBreak::Random),
        dict(Bias::Add, TieBreak::PeerId),
        ModelCrdt::Rga,
    ];
    let protocols = [
        ModelProtocol::StateBroadcast,
        ModelProtocol::OpBroadcast,
        ModelProtocol::AntiEntropy,
    ];
    let networks = [
        NetworkKind::Reliable,
        NetworkKind::Lossy,
        NetworkKind::Duplicating,
        NetworkKind::LossyDuplicating,
        NetworkKind::Reordering,
    ];
    let shapes = [(3, 1, ValueChoice::Own), (2, 2, ValueChoice::AnyOf(2))];
    let mut failing = 0;
    for crdt in crdts {
        for protocol in protocols {
            for network in networks {
                for (replicas, writes_per_replica, values) in shapes {
                    let config = CheckConfig {
                        crdt,
                        protocol,
                        network,
                        replicas,
                        writes_per_replica,
                        values,
                        timeout_ms: 5_000,
                        ..Default::default()
                    };
                    if matches!(check(&config).unwrap().verdict, Verdict::Fail { .. }) {
                        assert_round_trip(config);
                        failing += 1;
                    }
                }
            }
        }
    }
    println!("{failing} failing configurations round-trip");
}
