//! One named test per bug the harness found in itself, with its minimal counterexample as data.

use converge_checker::judge_builtin;
use converge_netsim::{
    Durability, End, FaultSpec, ProtocolKind, Scenario, SettleDrop, SimDuration, TimedOp, Topology,
    Verdict,
};

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// Found by a 10,000-seed sweep of the swarm scenario (seed 16): a replica wrote while isolated,
/// then crashed with volatile state. Its writes never left it and died with it; the eventual
/// convergence oracle still required every live replica to hold them, and reported "not converged"
/// although the replica that issued them did not stay correct.
#[test]
fn writes_lost_in_a_volatile_crash_are_not_required() {
    let mut scenario = Scenario {
        name: "lost-in-volatile-crash".into(),
        replicas: 2,
        ..Scenario::default()
    };
    scenario.duration = secs(6);
    scenario.settle = secs(4);
    scenario.workload.rate = 0.0;
    scenario.workload.ops = vec![
        TimedOp {
            at: secs(1),
            replica: 1,
            key: 0,
            value: Some(7),
            ..Default::default()
        },
        TimedOp {
            at: secs(5),
            replica: 0,
            key: 1,
            value: Some(8),
            ..Default::default()
        },
    ];
    scenario.faults = vec![
        FaultSpec::Isolate {
            at: SimDuration::ZERO,
            heal: Some(secs(4)),
            replica: 1,
        },
        FaultSpec::Crash {
            at: secs(2),
            replica: 1,
            restart: Some(secs(3)),
            state: Durability::Volatile,
        },
    ];
    scenario.protocol.anti_entropy = Some(secs(1));
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(
        report.verdict,
        Verdict::Converges,
        "{:?}",
        report.violations
    );
    // The same writes with a durable crash survive and must reach everyone.
    scenario.faults[1] = FaultSpec::Crash {
        at: secs(2),
        replica: 1,
        restart: Some(secs(3)),
        state: Durability::Durable,
    };
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(report.verdict, Verdict::Converges);
    assert_eq!(report.replicas[0].snapshot.delivered, 2);
}

/// Found by a 10,000-seed run of the zoo's correct configurations (reliable causal broadcast of the
/// dictionary, drop 0.1, seed 4332): the last write's message to one replica was lost, then lost
/// again on each of its five retransmissions, the last ones during the settle period; the run
/// ended with the update still being retransmitted, and the two updates after it waiting behind it
/// in the causal buffer. A correct protocol was judged "not converged" because the network kept
/// losing messages while it settled. The settle period is now quiescent by default.
///
/// The minimal form: two replicas, one write, every message lost until the settle period.
#[test]
fn the_settle_period_loses_no_message_at_random() {
    let mut scenario = Scenario {
        name: "lossy-until-settled".into(),
        replicas: 2,
        ..Scenario::default()
    };
    scenario.duration = secs(2);
    scenario.settle = secs(5);
    scenario.protocol.kind = ProtocolKind::ReliableCausal;
    scenario.network.drop = 1.0;
    scenario.workload.rate = 0.0;
    scenario.workload.ops = vec![TimedOp {
        at: secs(1),
        replica: 0,
        key: 0,
        value: Some(7),
        ..Default::default()
    }];
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(
        report.verdict,
        Verdict::Converges,
        "{:?}",
        report.violations
    );
    assert!(
        report.coverage.coverage.retransmissions >= 2,
        "{:?}",
        report.coverage
    );
    // Keeping the losses while settling, the update never arrives.
    scenario.network.settle_drop = SettleDrop::AsConfigured;
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(report.verdict, Verdict::NotConverged);
}

/// Found by the scenario-file fuzz test: under delta sync, a node that restarted with its state
/// lost started its log over, while its peers kept their positions in its old log. The next
/// request sliced the new log past its end (a panic), and a position still inside the new log
/// would have skipped its first entries. Log positions now carry the log's epoch.
///
/// The minimal form: one replica behind a relay, crashing with volatile state; and two replicas on
/// a mesh where the restarted one writes again, which its peer must still receive.
#[test]
fn delta_sync_positions_survive_a_volatile_restart() {
    let mut scenario = Scenario {
        name: "delta-sync-volatile-restart".into(),
        replicas: 1,
        ..Scenario::default()
    };
    scenario.protocol.kind = ProtocolKind::DeltaSync;
    scenario.protocol.topology = Topology::Relay;
    scenario.faults = vec![FaultSpec::Crash {
        at: secs(2),
        replica: 0,
        restart: Some(secs(4)),
        state: Durability::Volatile,
    }];
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(report.end, End::Completed);

    scenario.replicas = 2;
    scenario.protocol.topology = Topology::Mesh;
    scenario.duration = secs(8);
    scenario.workload.rate = 0.0;
    scenario.workload.ops = [(1, 0), (5, 1), (6, 2)]
        .into_iter()
        .map(|(at, key)| TimedOp {
            at: secs(at),
            replica: 0,
            key,
            value: Some(u64::from(key) + 1),
            ..Default::default()
        })
        .collect();
    let report = judge_builtin(&scenario, 0).expect("valid scenario");
    assert_eq!(
        report.verdict,
        Verdict::Converges,
        "{:?}",
        report.violations
    );
}
