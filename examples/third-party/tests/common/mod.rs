//! The hostile networks every adapter is put through.

#![allow(dead_code)]

use converge::netsim::{FaultSpec, Latency, ProtocolKind, Scenario, SimDuration};

/// Four replicas, three keys (many conflicts), one in five writes a remove; a network that loses
/// and duplicates one message in five and reorders freely (latency 5 to 300 ms); anti-entropy every
/// 500 ms repairs the losses; replica 3 joins late, at 1.5 s, and gets a snapshot on joining.
pub fn hostile(name: &str, kind: ProtocolKind) -> Scenario {
    let mut scenario = Scenario {
        name: name.into(),
        description: format!("{name}: drops, duplicates, reordering, a late joiner"),
        replicas: 4,
        duration: SimDuration::from_secs(4),
        settle: SimDuration::from_secs(4),
        ..Scenario::default()
    };
    scenario.protocol.kind = kind;
    scenario.protocol.anti_entropy = Some(SimDuration::from_ms(500));
    scenario.protocol.snapshot_on_join = true;
    scenario.network.latency = Latency::Uniform {
        min: SimDuration::from_ms(5),
        max: SimDuration::from_ms(300),
    };
    scenario.network.drop = 0.2;
    scenario.network.duplicate = 0.2;
    scenario.workload.rate = 3.0;
    scenario.workload.keys = 3;
    scenario.workload.remove_ratio = 0.2;
    scenario.faults.push(FaultSpec::Join {
        at: SimDuration::from_ms(1_500),
        replica: 3,
    });
    scenario
}

/// State broadcast on every change, plus anti-entropy.
pub fn hostile_state(name: &str) -> Scenario {
    hostile(name, ProtocolKind::StateBroadcast)
}

/// Fire-and-forget op broadcast, plus full-state anti-entropy.
pub fn hostile_ops(name: &str) -> Scenario {
    hostile(name, ProtocolKind::OpBroadcast)
}

/// Reliable causal broadcast (acks, retransmission, causal delivery), no anti-entropy.
pub fn hostile_causal(name: &str) -> Scenario {
    let mut scenario = hostile(name, ProtocolKind::ReliableCausal);
    scenario.protocol.anti_entropy = None;
    scenario
}
