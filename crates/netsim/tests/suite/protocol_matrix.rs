//! Every built-in protocol over every topology, under each kind of fault, at two seeds: the trace
//! hash and message counts of each run, pinned in `protocol-matrix.txt`. The scenario suite's
//! golden hashes cover the stories; this matrix covers the corners between them (a volatile
//! restart under delta sync, an outage of the relay under reliable causal broadcast, scripted
//! fates over gossip), so that a change to the simulator's protocol code that changes any run's
//! behaviour is seen here.
//!
//! Regenerate only on purpose: `CONVERGE_BLESS=1 cargo test -p converge-netsim --test suite
//! protocol_matrix`, and say why in the commit.

use std::fmt::Write;

use converge_crdt::{LwwGrid, LwwGridConfig, ReplicaId};
use converge_netsim::{
    run, DeltaPosition, Durability, Fate, FaultSpec, NoObserver, ProtocolKind, Scenario, Script,
    ScriptedFate, SimDuration, SwarmSpec, Topology,
};

const PINS: &str = "tests/protocol-matrix.txt";

fn grid(_: ReplicaId) -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

fn ms(ms: u64) -> SimDuration {
    SimDuration::from_ms(ms)
}

fn base(kind: ProtocolKind, topology: Topology) -> Scenario {
    let mut scenario = Scenario {
        name: "matrix".into(),
        replicas: 4,
        duration: SimDuration::from_secs(3),
        settle: SimDuration::from_secs(3),
        ..Scenario::default()
    };
    scenario.protocol.kind = kind;
    scenario.protocol.topology = topology;
    scenario.protocol.interval = ms(400);
    scenario.protocol.retransmit_timeout = ms(60);
    scenario.protocol.retransmit_max = 4;
    scenario.workload.rate = 4.0;
    scenario.workload.keys = 4;
    scenario
}

/// The variants of one protocol and topology, each named.
fn variants(kind: ProtocolKind, topology: Topology) -> Vec<(&'static str, Scenario)> {
    let mut out = vec![("plain", base(kind, topology))];
    let mut lossy = base(kind, topology);
    lossy.network.drop = 0.2;
    lossy.network.duplicate = 0.2;
    out.push(("lossy", lossy));
    let mut with_ae = base(kind, topology);
    with_ae.protocol.anti_entropy = Some(ms(700));
    with_ae.network.drop = 0.1;
    out.push(("anti-entropy", with_ae));
    for (name, snapshot) in [("join-snapshot", true), ("join-no-snapshot", false)] {
        let mut join = base(kind, topology);
        join.protocol.snapshot_on_join = snapshot;
        join.network.drop = 0.1;
        join.faults.push(FaultSpec::Join {
            at: ms(1_300),
            replica: 2,
        });
        out.push((name, join));
    }
    for (name, state) in [
        ("crash-durable", Durability::Durable),
        ("crash-volatile", Durability::Volatile),
    ] {
        let mut crash = base(kind, topology);
        crash.network.drop = 0.1;
        crash.faults.push(FaultSpec::Crash {
            at: ms(900),
            replica: 1,
            restart: Some(ms(2_100)),
            state,
        });
        out.push((name, crash));
    }
    let mut partition = base(kind, topology);
    partition.faults.push(FaultSpec::Partition {
        at: ms(500),
        heal: Some(ms(2_500)),
        groups: vec![vec![0, 1]],
        direction: Default::default(),
    });
    partition.faults.push(FaultSpec::Leave {
        at: ms(2_700),
        replica: 3,
    });
    out.push(("partition-leave", partition));
    if topology == Topology::Relay {
        let mut outage = base(kind, topology);
        outage.faults.push(FaultSpec::ServerOutage {
            at: ms(800),
            until: ms(1_900),
        });
        out.push(("server-outage", outage));
    }
    let mut single = base(kind, topology);
    single.replicas = 1;
    out.push(("single-replica", single));
    let mut wide = base(kind, topology);
    wide.replicas = 9;
    wide.protocol.fanout = 3;
    wide.network.drop = 0.1;
    out.push(("nine-replicas", wide));
    let mut swarm = base(kind, topology);
    swarm.swarm = Some(SwarmSpec {
        faults: 4,
        ..SwarmSpec::default()
    });
    out.push(("swarm", swarm));
    let mut scripted = base(kind, topology);
    scripted.script = Some(Script {
        latency: ms(20),
        fates: (0..40)
            .map(|message| ScriptedFate {
                message: message * 3,
                fate: if message % 2 == 0 {
                    Fate::Drop
                } else {
                    Fate::Duplicate {
                        after: ms(5),
                        again: ms(90),
                    }
                },
            })
            .collect(),
        coins: vec![true, false, true],
    });
    scripted.workload.rate = 0.0;
    scripted.workload.ops = (0..12)
        .map(|i| converge_netsim::TimedOp {
            at: ms(100 + 200 * i),
            replica: (i % 4) as u32,
            key: (i % 3) as u32,
            value: if i % 5 == 4 { None } else { Some(i + 1) },
            ..Default::default()
        })
        .collect();
    out.push(("scripted", scripted));
    if kind == ProtocolKind::DeltaSync {
        let more: Vec<(&'static str, Scenario)> = out
            .iter()
            .map(|(name, scenario)| {
                let mut vv = scenario.clone();
                vv.protocol.delta_position = DeltaPosition::VersionVector;
                (*name, vv)
            })
            .collect();
        for (name, scenario) in more {
            out.push((leak(format!("{name}-vv")), scenario));
        }
    }
    out
}

fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

fn matrix() -> String {
    let mut lines = String::new();
    for kind in [
        ProtocolKind::StateBroadcast,
        ProtocolKind::AntiEntropy,
        ProtocolKind::OpBroadcast,
        ProtocolKind::ReliableCausal,
        ProtocolKind::DeltaSync,
        ProtocolKind::MerkleAntiEntropy,
    ] {
        for topology in [Topology::Mesh, Topology::Relay, Topology::Gossip] {
            for (name, scenario) in variants(kind, topology) {
                for seed in [0, 1] {
                    let outcome = run(&scenario, seed, &grid, &mut NoObserver).expect("valid");
                    let m = outcome.messages;
                    writeln!(
                        lines,
                        "{kind:?} {topology:?} {name} seed {seed}: {:016x} events {} sent {} delivered {} dropped {} bytes {} retransmissions {}",
                        outcome.trace_hash,
                        outcome.events,
                        m.sent,
                        m.delivered,
                        m.dropped,
                        m.bytes_sent,
                        outcome.coverage.retransmissions,
                    )
                    .expect("a string takes writes");
                }
            }
        }
    }
    lines
}

#[test]
fn every_protocol_topology_and_fault_runs_as_pinned() {
    let actual = matrix();
    if std::env::var_os("CONVERGE_BLESS").is_some() {
        std::fs::write(PINS, &actual).expect("the pins are writable");
        return;
    }
    let pinned = std::fs::read_to_string(PINS).expect("pins exist (CONVERGE_BLESS=1 writes them)");
    let changed: Vec<String> = pinned
        .lines()
        .zip(actual.lines())
        .filter(|(pin, now)| pin != now)
        .map(|(pin, now)| format!("pinned {pin}\n   now {now}"))
        .collect();
    assert!(
        changed.is_empty() && pinned.lines().count() == actual.lines().count(),
        "{} of {} runs changed:\n{}",
        changed.len(),
        pinned.lines().count(),
        changed.join("\n")
    );
}
