//! Connections in the model checker: in-order links that lose messages only when a connection
//! drops, both ends told of the drop and of the reconnect, the stall and the sync loop that
//! op stream's two reconnect bugs cause, and every counterexample replayed by netsim to the
//! same verdict.

use converge_checker::judge_builtin;
use converge_checker::model::{
    check, unique_states_with_and_without_symmetry, CheckConfig, CheckError, CheckReport,
    CounterexampleAction, ModelCheck, ModelCrdt, ModelProtocol, NetworkKind, StateSpace, Symmetry,
    Verdict,
};
use converge_crdt::{LwwGrid, LwwGridConfig, ReplicaId, TieBreak};
use converge_netsim::protocols::OpStream;
use converge_netsim::{FaultSpec, ProtocolKind, ProtocolSpec, Reconnect, Verdict as RunVerdict};

fn grid(_: ReplicaId) -> LwwGrid {
    LwwGrid::new(LwwGridConfig {
        rows: 1,
        cols: 2,
        ..LwwGridConfig::default()
    })
}

/// Op stream between two replicas over connections, one connection drop, through the builder
/// a user calls.
fn op_stream(on_reconnect: Reconnect) -> ModelCheck<LwwGrid, OpStream> {
    ModelCheck::new(OpStream, grid)
        .options(ProtocolSpec {
            kind: ProtocolKind::OpStream,
            on_reconnect,
            ..ProtocolSpec::default()
        })
        .replicas(2)
        .network(NetworkKind::Connections)
}

/// The same, as `converge check --protocol op-stream --network connections` builds it.
fn op_stream_config(on_reconnect: Reconnect) -> CheckConfig {
    CheckConfig {
        protocol: ModelProtocol::OpStream,
        on_reconnect,
        replicas: 2,
        network: NetworkKind::Connections,
        ..CheckConfig::default()
    }
}

fn assert_fails(report: &CheckReport, property: &str, depth: usize) {
    assert_eq!(
        report.verdict,
        Verdict::Fail {
            property: property.into()
        },
        "{report:#?}"
    );
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    assert!(counterexample.minimal, "{report:#?}");
    assert_eq!(counterexample.depth, depth, "{:#?}", counterexample.steps);
}

#[test]
fn keep_position_stalls_after_one_connection_drop_and_replays_to_the_stall() {
    let check = op_stream(Reconnect::KeepPosition);
    let report = check.run().expect("a valid configuration");
    assert_fails(&report, "quiescent implies converged", 4);
    // Pinned: two replicas, one write each, one connection drop; unreduced (op stream keeps
    // positions by node id).
    assert_eq!(report.unique_states, 103, "{}", check.explain(&report));
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    assert!(
        counterexample.steps[2].starts_with("the connection r0 <-> r1 drops, losing r0 -> r1"),
        "{:#?}",
        counterexample.steps
    );
    assert!(matches!(
        counterexample.actions[3],
        CounterexampleAction::Reconnect { a: 0, b: 1 }
    ));
    let liveness = counterexample.liveness.as_deref().unwrap_or_default();
    assert!(liveness.starts_with("stalled"), "{liveness}");
    let replay = check.replay(counterexample).expect("the path replays");
    assert_eq!(
        replay.verdict,
        RunVerdict::Stalled,
        "{}",
        check.explain(&report)
    );
}

#[test]
fn the_handshake_passes_where_keep_position_stalls() {
    let report = op_stream(Reconnect::Handshake)
        .run()
        .expect("a valid configuration");
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    assert_eq!(report.unique_states, 336);
    assert_eq!(report.bound_note, None);
    // Two connection drops: still nothing lost for good.
    let twice = op_stream(Reconnect::Handshake)
        .connection_drops(2)
        .run()
        .expect("a valid configuration");
    assert_eq!(twice.verdict, Verdict::Pass, "{twice:#?}");
}

#[test]
fn echo_handshake_is_a_sync_loop_and_replays_to_one() {
    let check = op_stream(Reconnect::EchoHandshake);
    let report = check.run().expect("a valid configuration");
    // The replicas agree, yet their hellos answer each other for ever. The shortest path is
    // long because the model's fair continuation must fit the loop within four messages per
    // link: right after the reconnect the resent ops and the echoes overflow it, and such a
    // continuation is taken as one that may still teach something.
    assert_fails(&report, "no sync loop", 11);
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    let liveness = counterexample.liveness.as_deref().unwrap_or_default();
    assert!(
        liveness.starts_with("sync loop") && liveness.contains("no timer behind it"),
        "{liveness}"
    );
    let replay = check.replay(counterexample).expect("the path replays");
    assert_eq!(
        replay.verdict,
        RunVerdict::SyncLoop,
        "{}",
        check.explain(&report)
    );
}

#[test]
fn the_checker_configuration_finds_the_same_and_its_scenario_replays() {
    let config = op_stream_config(Reconnect::KeepPosition);
    let report = check(&config).expect("a valid configuration");
    assert_fails(&report, "quiescent implies converged", 4);
    assert_eq!(report.unique_states, 103);
    assert_eq!(report.symmetry, Symmetry::Off);
    assert!(report
        .symmetry_note
        .as_deref()
        .unwrap_or_default()
        .contains("op stream"));
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    let scenario = counterexample
        .to_scenario(&config)
        .expect("the path scripts");
    assert!(scenario.network.in_order);
    assert_eq!(
        scenario.faults,
        vec![FaultSpec::ConnectionDrop {
            at: converge_netsim::SimDuration::from_us(3_000),
            nodes: [0, 1],
            reconnect: Some(converge_netsim::SimDuration::from_us(4_000)),
        }]
    );
    let run = judge_builtin(&scenario, 0).expect("the scenario runs");
    assert_eq!(run.verdict, RunVerdict::Stalled);

    let handshake = check(&op_stream_config(Reconnect::Handshake)).expect("valid");
    assert_eq!(handshake.verdict, Verdict::Pass, "{handshake:#?}");
    let echo = check(&op_stream_config(Reconnect::EchoHandshake)).expect("valid");
    assert_fails(&echo, "no sync loop", 11);
    let scenario = echo
        .counterexample
        .as_ref()
        .expect("a counterexample")
        .to_scenario(&op_stream_config(Reconnect::EchoHandshake))
        .expect("the path scripts");
    let run = judge_builtin(&scenario, 0).expect("the scenario runs");
    assert_eq!(run.verdict, RunVerdict::SyncLoop);
}

/// Op broadcast sends each op once: a connection drop that loses it leaves a replica without
/// it for good, which the model finds with symmetry reduction and without it at one depth.
#[test]
fn op_broadcast_loses_an_op_to_a_connection_drop_with_and_without_symmetry() {
    let config = CheckConfig {
        crdt: ModelCrdt::Grid {
            tie_break: TieBreak::KeepLocal,
        },
        protocol: ModelProtocol::OpBroadcast,
        network: NetworkKind::Connections,
        keys: 2,
        writes_per_replica: 2,
        ..CheckConfig::default()
    };
    let reduced = check(&config).expect("valid");
    let unreduced = check(&CheckConfig {
        symmetry: Symmetry::Off,
        ..config
    })
    .expect("valid");
    assert_eq!(reduced.symmetry, Symmetry::On);
    assert_eq!(reduced.verdict, unreduced.verdict);
    let depth = |report: &CheckReport| report.counterexample.as_ref().map(|c| c.depth);
    assert_eq!(depth(&reduced), depth(&unreduced));
    let space = unique_states_with_and_without_symmetry(&config).expect("valid");
    assert!(space.complete && space.symmetry_applied);
    assert!(
        space.with_symmetry < space.without_symmetry,
        "{space:?}: renaming replicas renames the connections that are down"
    );
}

#[test]
fn a_single_lost_op_over_connections_is_a_stall_that_replays() {
    let config = CheckConfig {
        crdt: ModelCrdt::Grid {
            tie_break: TieBreak::PeerId,
        },
        protocol: ModelProtocol::OpBroadcast,
        replicas: 2,
        network: NetworkKind::Connections,
        ..CheckConfig::default()
    };
    let report = check(&config).expect("valid");
    // Both writes (quiescence waits for every write), the drop that loses both ops, the
    // reconnect.
    assert_fails(&report, "quiescent implies converged", 4);
    let scenario = report
        .counterexample
        .as_ref()
        .expect("a counterexample")
        .to_scenario(&config)
        .expect("the path scripts");
    let run = judge_builtin(&scenario, 0).expect("the scenario runs");
    assert!(
        run.verdict.meets(RunVerdict::NotConverged),
        "{:?}",
        run.verdict
    );
}

/// A connection loses messages only by dropping: with no connection drop to spend, a network
/// of connections is the reliable network, state for state. The states evaluated are not
/// compared: a checker thread keeps back the revisits it handed the checker a moment before,
/// by a table whose slots the two networks' fingerprints fill differently.
#[test]
fn connections_without_a_drop_explore_exactly_the_reliable_network() {
    for protocol in [ModelProtocol::StateBroadcast, ModelProtocol::OpBroadcast] {
        let reliable = CheckConfig {
            protocol,
            ..CheckConfig::default()
        };
        let connections = CheckConfig {
            network: NetworkKind::Connections,
            connection_drops: 0,
            ..reliable
        };
        let [reliable, connections] = [reliable, connections].map(|config| {
            counts(&unique_states_with_and_without_symmetry(&config).expect("valid"))
        });
        assert_eq!(reliable, connections, "{protocol:?}");
    }
}

/// A state space's unique counts, with and without symmetry, and whether both are complete.
fn counts(space: &StateSpace) -> [u64; 3] {
    [
        space.with_symmetry,
        space.without_symmetry,
        u64::from(space.complete),
    ]
}

#[test]
fn too_many_connection_drops_are_refused() {
    let config = CheckConfig {
        network: NetworkKind::Connections,
        connection_drops: 4,
        ..CheckConfig::default()
    };
    assert_eq!(
        check(&config).err(),
        Some(CheckError::ConnectionDrops { got: 4 })
    );
    assert_eq!(
        CheckError::ConnectionDrops { got: 4 }.to_string(),
        "connection_drops must be at most 3, got 4"
    );
    let refused = op_stream(Reconnect::Handshake).connection_drops(9).run();
    assert_eq!(refused.err(), Some(CheckError::ConnectionDrops { got: 9 }));
}
