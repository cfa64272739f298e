//! The oracles on the RGA list: no false alarm where the list keeps its promises, and the
//! alarm where a clock breaks them.
//!
//! The intent oracle's sequential specification is every update's op applied to an empty list in
//! stamp order, each insert right after the element its writer put it after. Under clocks that
//! stamp past everything their replica holds (Lamport, hybrid) that is what the converged list is,
//! whatever the network did; a wall clock running behind stamps inserts below elements their
//! writer had seen, which the intent oracle reports as causally later writes that lost, as it does
//! for the grid in story 6.

use converge_checker::judge_builtin;
use converge_crdt::ClockKind;
use converge_netsim::{
    CrdtSpec, FaultSpec, ProtocolKind, Scenario, SimDuration, SwarmSpec, Verdict,
};

fn genome(clock: ClockKind, protocol: ProtocolKind) -> Scenario {
    let mut scenario = Scenario {
        name: "genome".into(),
        replicas: 4,
        crdt: CrdtSpec::Rga,
        clock,
        ..Scenario::default()
    };
    scenario.protocol.kind = protocol;
    scenario.protocol.anti_entropy = Some(SimDuration::from_ms(500));
    scenario.workload.keys = 1_000_000;
    scenario.workload.values = 4;
    scenario.workload.remove_ratio = 0.25;
    scenario
}

#[test]
fn lists_converge_to_their_sequential_specification_under_faults() {
    for (clock, protocol) in [
        (ClockKind::Lamport, ProtocolKind::OpBroadcast),
        (ClockKind::Lamport, ProtocolKind::StateBroadcast),
        (ClockKind::Hybrid, ProtocolKind::OpBroadcast),
        (ClockKind::PerKeyCounter, ProtocolKind::StateBroadcast),
    ] {
        let mut scenario = genome(clock, protocol);
        scenario.swarm = Some(SwarmSpec {
            faults: 3,
            drop_max: 0.2,
            duplicate_max: 0.2,
        });
        scenario.faults.push(FaultSpec::ClockSkew {
            replica: 1,
            offset_us: -2_000_000,
            drift_ppm: 0,
        });
        for seed in 0..40 {
            let report = judge_builtin(&scenario, seed).unwrap();
            assert_eq!(
                report.verdict,
                Verdict::Converges,
                "{clock:?} {protocol:?} seed {seed}: {:#?}",
                report.violations
            );
            assert!(
                !report.coverage.vacuous,
                "{clock:?} {protocol:?} seed {seed}"
            );
        }
    }
}

#[test]
fn a_wall_clock_running_behind_misplaces_inserts_and_the_intent_oracle_says_so() {
    let mut scenario = genome(ClockKind::WallClock, ProtocolKind::OpBroadcast);
    scenario.faults.push(FaultSpec::ClockSkew {
        replica: 1,
        offset_us: -2_000_000,
        drift_ppm: 0,
    });
    let report = judge_builtin(&scenario, 0).unwrap();
    assert_eq!(
        report.verdict,
        Verdict::IntentViolated,
        "{:#?}",
        report.violations
    );
    assert!(
        report.violations[0]
            .detail
            .contains("causally later writes lost"),
        "{}",
        report.violations[0].detail
    );
}
