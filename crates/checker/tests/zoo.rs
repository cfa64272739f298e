//! The zoo: known-buggy configurations, each caught by a named test, and the correct configurations
//! next to them passing many seeds with no false alarm.
//!
//! Seeds: each buggy configuration must be caught within a small seed range; each correct one must
//! pass every seed of a range. `CONVERGE_SEEDS=A..B` widens the correct configurations' range
//! (release builds run 10,000 seeds from `.ci/run`).

use std::collections::BTreeMap;

use converge_checker::{judge, judge_builtin, shrink};
use converge_crdt::{
    Bias, ClockKind, Coin, DeltaCrdt, Deltas, Intent, LwwDictConfig, LwwGridConfig, OpCrdt,
    ReplicaId, Stamp, StateCrdt, TieBreak,
};
use converge_netsim::{
    CrdtSpec, DeltaPosition, Durability, Fate, FaultSpec, Latency, ProtocolKind, Reconnect,
    Scenario, Script, ScriptedFate, SimDuration, TimedOp, Topology, Verdict,
};
use serde::{Deserialize, Serialize};

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn grid(tie_break: TieBreak) -> CrdtSpec {
    CrdtSpec::LwwGrid(LwwGridConfig {
        tie_break,
        ..Default::default()
    })
}

/// A small busy scenario: few keys so that writes conflict.
fn busy(name: &str) -> Scenario {
    let mut scenario = Scenario {
        name: name.to_string(),
        replicas: 3,
        ..Scenario::default()
    };
    scenario.duration = secs(5);
    scenario.settle = secs(5);
    scenario.workload.rate = 4.0;
    scenario.workload.keys = 3;
    scenario
}

/// The first seed in `seeds` whose verdict is `verdict`.
fn first_seed_with(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    verdict: Verdict,
) -> Option<u64> {
    seeds.into_iter().find(|seed| {
        judge_builtin(scenario, *seed)
            .expect("valid scenario")
            .verdict
            == verdict
    })
}

fn seed_range(default: std::ops::Range<u64>) -> std::ops::Range<u64> {
    match std::env::var("CONVERGE_SEEDS") {
        Ok(text) => {
            let (a, b) = text.split_once("..").expect("CONVERGE_SEEDS is A..B");
            a.parse().expect("A is a number")..b.parse().expect("B is a number")
        }
        Err(_) => default,
    }
}

fn assert_caught(scenario: &Scenario, verdict: Verdict) {
    let seed = first_seed_with(scenario, 0..30, verdict);
    assert!(
        seed.is_some(),
        "{} was not caught as {verdict:?} in seeds 0..30",
        scenario.name
    );
}

fn assert_passes_every_seed(scenario: &Scenario, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let report = judge_builtin(scenario, seed).expect("valid scenario");
        assert_eq!(
            report.verdict,
            Verdict::Converges,
            "false alarm on {} seed {seed}: {:?}",
            scenario.name,
            report.violations.first().map(|v| &v.detail)
        );
    }
}

#[test]
fn random_tie_break_diverges() {
    let mut scenario = busy("random-tie-break");
    scenario.crdt = grid(TieBreak::Random);
    scenario.clock = ClockKind::PerKeyCounter;
    scenario.protocol.topology = Topology::Relay;
    assert_caught(&scenario, Verdict::Diverges);
}

#[test]
fn keep_local_grid_diverges() {
    let mut scenario = busy("keep-local-grid");
    scenario.crdt = grid(TieBreak::KeepLocal);
    scenario.clock = ClockKind::PerKeyCounter;
    assert_caught(&scenario, Verdict::Diverges);
}

#[test]
fn keep_local_dict_diverges() {
    let mut scenario = busy("keep-local-dict");
    scenario.crdt = CrdtSpec::LwwDict(LwwDictConfig {
        bias: Bias::Add,
        tie_break: TieBreak::KeepLocal,
    });
    scenario.clock = ClockKind::PerKeyCounter;
    assert_caught(&scenario, Verdict::Diverges);
}

#[test]
fn op_broadcast_loses_an_update_to_one_drop() {
    let mut scenario = busy("op-broadcast-drop");
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.network.drop = 0.05;
    // Quiet for good with replicas apart: the stall the simulator names.
    assert_caught(&scenario, Verdict::Stalled);
}

#[test]
fn op_broadcast_never_catches_up_a_late_joiner() {
    let mut scenario = busy("op-broadcast-late-join");
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.protocol.snapshot_on_join = false;
    scenario.faults.push(FaultSpec::Join {
        at: secs(2),
        replica: 2,
    });
    // Quiet for good with replicas apart: the stall the simulator names.
    assert_caught(&scenario, Verdict::Stalled);
}

#[test]
fn op_broadcast_never_catches_up_a_restarted_replica() {
    let mut scenario = busy("op-broadcast-restart");
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.protocol.snapshot_on_join = false;
    scenario.faults.push(FaultSpec::Crash {
        at: secs(1),
        replica: 1,
        restart: Some(secs(3)),
        state: Durability::Volatile,
    });
    // Quiet for good with replicas apart: the stall the simulator names.
    assert_caught(&scenario, Verdict::Stalled);
}

#[test]
fn relay_without_snapshot_on_join_leaves_the_joiner_behind() {
    let mut scenario = busy("relay-no-snapshot");
    scenario.protocol.topology = Topology::Relay;
    scenario.protocol.snapshot_on_join = false;
    scenario.workload.keys = 9;
    scenario.workload.writers = Some(vec![0, 1]);
    scenario.workload.stop = Some(secs(2));
    scenario.faults.push(FaultSpec::Join {
        at: secs(3),
        replica: 2,
    });
    // Quiet for good with replicas apart: the stall the simulator names.
    assert_caught(&scenario, Verdict::Stalled);
    scenario.protocol.snapshot_on_join = true;
    assert_passes_every_seed(&scenario, 0..5);
}

#[test]
fn wall_clock_skew_loses_causally_later_writes() {
    let mut scenario = busy("wall-clock-skew");
    scenario.clock = ClockKind::WallClock;
    scenario.faults.push(FaultSpec::ClockSkew {
        replica: 1,
        offset_us: -2_000_000,
        drift_ppm: 0,
    });
    assert_caught(&scenario, Verdict::IntentViolated);
    scenario.clock = ClockKind::Hybrid;
    assert_passes_every_seed(&scenario, 0..5);
}

#[test]
fn lamport_without_max_on_receive_loses_causally_later_writes() {
    let mut scenario = busy("lamport-local-only");
    scenario.clock = ClockKind::LamportLocalOnly;
    scenario.workload.rate = 1.0;
    scenario.workload.writers = None;
    assert_caught(&scenario, Verdict::IntentViolated);
}

#[test]
fn a_far_future_stamp_wedges_a_key() {
    let mut scenario = busy("far-future-stamp");
    scenario.clock = ClockKind::WallClock;
    // One replica's clock is a year ahead: its writes win every later write for a year.
    scenario.faults.push(FaultSpec::ClockSkew {
        replica: 0,
        offset_us: 365 * 24 * 3_600 * 1_000_000,
        drift_ppm: 0,
    });
    assert_caught(&scenario, Verdict::IntentViolated);
}

/// A counter whose merge adds the other side's count instead of taking the maximum per replica:
/// merge is not idempotent, so a duplicated or repeated state counts twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct SummingCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Increment {
    replica: ReplicaId,
    by: u64,
}

impl StateCrdt for SummingCounter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (replica, count) in &other.counts {
            *self.counts.entry(*replica).or_default() += count;
        }
    }

    fn view(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl OpCrdt for SummingCounter {
    type Intent = Intent;
    type Op = Increment;

    fn prepare(&self, _intent: &Intent, stamp: Stamp) -> Increment {
        Increment {
            replica: stamp.replica,
            by: 1,
        }
    }

    fn apply(&mut self, op: &Increment, _coin: &mut dyn Coin) {
        *self.counts.entry(op.replica).or_default() += op.by;
    }
}

#[test]
fn a_non_idempotent_merge_diverges() {
    let mut scenario = busy("non-idempotent-merge");
    scenario.network.duplicate = 0.1;
    let caught = (0..30).any(|seed| {
        judge(&scenario, seed, &|_| SummingCounter::default())
            .expect("valid")
            .report
            .verdict
            == Verdict::Diverges
    });
    assert!(
        caught,
        "the summing counter's double counting was not caught"
    );
}

/// An op-based set without stamps: a remove deletes the element if present. Delivered before its
/// add (no causal delivery), the remove is lost and the add wins on that replica only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct NaiveSet {
    elements: std::collections::BTreeSet<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum SetOp {
    Add(u32),
    Remove(u32),
}

impl StateCrdt for NaiveSet {
    type View = Vec<u32>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        self.elements.extend(other.elements.iter().copied());
    }

    fn view(&self) -> Vec<u32> {
        self.elements.iter().copied().collect()
    }
}

impl OpCrdt for NaiveSet {
    type Intent = Intent;
    type Op = SetOp;

    fn prepare(&self, intent: &Intent, _stamp: Stamp) -> SetOp {
        match *intent {
            Intent::Put { key, .. } => SetOp::Add(key),
            Intent::Remove { key } => SetOp::Remove(key),
        }
    }

    fn apply(&mut self, op: &SetOp, _coin: &mut dyn Coin) {
        match op {
            SetOp::Add(key) => {
                self.elements.insert(*key);
            }
            SetOp::Remove(key) => {
                self.elements.remove(key);
            }
        }
    }
}

#[test]
fn an_op_based_remove_before_its_add_without_causal_delivery_diverges() {
    let mut scenario = busy("remove-before-add");
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.workload.remove_ratio = 0.5;
    scenario.workload.keys = 2;
    scenario.network.latency = Latency::Exponential {
        mean: SimDuration::from_ms(300),
    };
    let caught = (0..30).any(|seed| {
        judge(&scenario, seed, &|_| NaiveSet::default())
            .expect("valid")
            .report
            .verdict
            == Verdict::Diverges
    });
    assert!(caught, "a remove delivered before its add was not caught");
}

/// A grow-only counter whose merge is right (the maximum per replica) and whose `apply` adds the
/// op's increment: applied twice, an op counts twice. Over a network that duplicates and a
/// protocol that does not deduplicate (fire-and-forget op broadcast), the application sees the
/// duplicate, as a real one would.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct AddingCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl StateCrdt for AddingCounter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (replica, count) in &other.counts {
            let mine = self.counts.entry(*replica).or_default();
            *mine = (*mine).max(*count);
        }
    }

    fn view(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl OpCrdt for AddingCounter {
    type Intent = Intent;
    type Op = Increment;

    fn prepare(&self, _intent: &Intent, stamp: Stamp) -> Increment {
        Increment {
            replica: stamp.replica,
            by: 1,
        }
    }

    fn apply(&mut self, op: &Increment, _coin: &mut dyn Coin) {
        *self.counts.entry(op.replica).or_default() += op.by;
    }
}

fn duplicating_op_broadcast() -> Scenario {
    let mut scenario = busy("non-idempotent-apply");
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.network.duplicate = 0.2;
    scenario
}

/// The minimal counterexample the shrinker found for the adding counter under duplicating op
/// broadcast (seed 1, shrunk from 3 replicas, 73 writes, 146 messages): one write of replica 1,
/// its one message to replica 0 delivered twice. Replica 0 then holds the same one update as
/// replica 1 and counts 2 where replica 1 counts 1.
fn non_idempotent_apply_counterexample() -> Scenario {
    let mut scenario = duplicating_op_broadcast();
    scenario.name = "non-idempotent-apply-minimal".into();
    scenario.replicas = 2;
    scenario.workload.rate = 0.0;
    scenario.workload.ops = vec![TimedOp {
        at: SimDuration::from_us(50_283),
        replica: 1,
        key: 2,
        value: Some(179),
        ..Default::default()
    }];
    scenario.duration = SimDuration::from_us(51_283);
    scenario.script = Some(Script {
        fates: vec![ScriptedFate {
            message: 0,
            fate: Fate::Duplicate {
                after: SimDuration::from_us(23_788),
                again: SimDuration::from_us(48_935),
            },
        }],
        ..Script::default()
    });
    scenario
}

#[test]
fn a_non_idempotent_apply_under_duplication_diverges() {
    let scenario = duplicating_op_broadcast();
    let make = |_| AddingCounter::default();
    let caught: Vec<u64> = (0..30)
        .filter(|seed| {
            judge(&scenario, *seed, &make)
                .expect("valid")
                .report
                .verdict
                == Verdict::Diverges
        })
        .collect();
    assert!(
        caught.contains(&1),
        "the adding counter's double count under duplicates was not caught at seed 1: {caught:?}"
    );
    let shrunk = shrink(&scenario, 1, &make)
        .expect("valid")
        .expect("the failing run shrinks");
    assert_eq!(shrunk.verdict, Verdict::Diverges);
    assert!(
        shrunk.minimal.writes <= 1 && shrunk.minimal.replicas <= 2,
        "shrunk to {}",
        shrunk.sizes()
    );
    // The pinned counterexample fails the same way, at the second copy of the one message.
    let pinned = judge(&non_idempotent_apply_counterexample(), 0, &make).expect("valid");
    assert_eq!(pinned.report.verdict, Verdict::Diverges);
    assert_eq!(pinned.outcome.replicas[0].crdt.view(), 2);
    assert_eq!(pinned.outcome.replicas[1].crdt.view(), 1);
    // A protocol that deduplicates by its own sequence numbers never hands the copy to apply.
    let mut deduplicating = scenario.clone();
    deduplicating.protocol.kind = ProtocolKind::ReliableCausal;
    assert_passes_every_seed_with(&deduplicating, 0..10, &make);
}

/// A last-writer-wins map with deltas: each key keeps the greatest (stamp, value), and every
/// change records the version it happened at. `skips_first_change` plants an off-by-one in
/// `delta_since`: the delta leaves out the first change after the version asked for.
#[derive(Clone, Debug, Default)]
struct LwwMap {
    entries: BTreeMap<u32, (Stamp, Option<u64>)>,
    changed_at: BTreeMap<u32, u64>,
    version: u64,
    skips_first_change: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct MapOp {
    key: u32,
    stamp: Stamp,
    value: Option<u64>,
}

impl LwwMap {
    fn planted() -> Self {
        LwwMap {
            skips_first_change: true,
            ..LwwMap::default()
        }
    }

    fn offer(&mut self, key: u32, stamp: Stamp, value: Option<u64>) {
        let wins = self
            .entries
            .get(&key)
            .is_none_or(|(held, held_value)| (stamp, value) > (*held, *held_value));
        if wins {
            self.entries.insert(key, (stamp, value));
            self.version += 1;
            self.changed_at.insert(key, self.version);
        }
    }
}

impl PartialEq for LwwMap {
    /// The replicated entries; versions are each replica's own bookkeeping.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl StateCrdt for LwwMap {
    type View = BTreeMap<u32, u64>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (key, (stamp, value)) in &other.entries {
            self.offer(*key, *stamp, *value);
        }
    }

    fn view(&self) -> BTreeMap<u32, u64> {
        self.entries
            .iter()
            .filter_map(|(key, (_, value))| value.map(|v| (*key, v)))
            .collect()
    }

    fn time_max(&self) -> u64 {
        self.entries
            .values()
            .map(|(s, _)| s.time)
            .max()
            .unwrap_or(0)
    }

    fn key_time(&self, key: u32) -> Option<u64> {
        self.entries.get(&key).map(|(s, _)| s.time)
    }

    fn deltas() -> Option<Deltas<Self>> {
        Some(Deltas::of())
    }
}

impl OpCrdt for LwwMap {
    type Intent = Intent;
    type Op = MapOp;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> MapOp {
        let value = match *intent {
            Intent::Put { value, .. } => Some(value),
            Intent::Remove { .. } => None,
        };
        MapOp {
            key: intent.key(),
            stamp,
            value,
        }
    }

    fn apply(&mut self, op: &MapOp, _coin: &mut dyn Coin) {
        self.offer(op.key, op.stamp, op.value);
    }
}

impl DeltaCrdt for LwwMap {
    fn version(&self) -> u64 {
        self.version
    }

    fn delta_since(&self, version: u64) -> Self {
        let after = if self.skips_first_change {
            version + 1
        } else {
            version
        };
        let mut delta = LwwMap {
            skips_first_change: self.skips_first_change,
            ..LwwMap::default()
        };
        for (key, entry) in &self.entries {
            if self.changed_at[key] > after {
                delta.entries.insert(*key, *entry);
            }
        }
        delta
    }
}

fn delta_sync(position: DeltaPosition) -> Scenario {
    let mut scenario = busy("delta-sync-lww-map");
    scenario.protocol.kind = ProtocolKind::DeltaSync;
    scenario.protocol.delta_position = position;
    scenario.network.drop = 0.1;
    scenario
}

/// The minimal counterexample the shrinker found for the off-by-one delta (seed 0, shrunk from 3
/// replicas, 49 writes, 116 messages, the same under both position modes): replica 0 writes
/// once, and every poll and reply is delivered, after these delays in microseconds. Replica 1's
/// delta since version zero leaves out that one change: it holds the same one update as
/// replica 0 with an empty map.
const WRONG_DELTA_DELAYS_US: [u64; 20] = [
    24_363, 26_010, 11_160, 41_341, 33_137, 37_537, 46_644, 41_480, 43_760, 43_891, 19_383, 24_356,
    20_846, 25_435, 21_082, 21_275, 19_687, 12_581, 10_074, 45_332,
];

fn wrong_delta_counterexample() -> Scenario {
    let mut scenario = delta_sync(DeltaPosition::LogPosition);
    scenario.name = "wrong-delta-minimal".into();
    scenario.replicas = 2;
    scenario.workload.rate = 0.0;
    scenario.workload.ops = vec![TimedOp {
        at: SimDuration::from_us(1_546),
        replica: 0,
        key: 1,
        value: Some(75),
        ..Default::default()
    }];
    scenario.duration = SimDuration::from_us(2_546);
    let fates = WRONG_DELTA_DELAYS_US
        .iter()
        .enumerate()
        .map(|(message, after)| ScriptedFate {
            message: message as u64,
            fate: Fate::Deliver {
                after: SimDuration::from_us(*after),
            },
        })
        .collect();
    scenario.script = Some(Script {
        fates,
        ..Script::default()
    });
    scenario
}

#[test]
fn a_wrong_delta_diverges_under_delta_sync() {
    for position in [DeltaPosition::LogPosition, DeltaPosition::VersionVector] {
        let scenario = delta_sync(position);
        let make = |_| LwwMap::planted();
        let seed = (0..30)
            .find(|seed| {
                judge(&scenario, *seed, &make)
                    .expect("valid")
                    .report
                    .verdict
                    == Verdict::Diverges
            })
            .unwrap_or_else(|| panic!("the wrong delta was not caught by {position:?}"));
        let shrunk = shrink(&scenario, seed, &make)
            .expect("valid")
            .expect("the failing run shrinks");
        assert_eq!(shrunk.verdict, Verdict::Diverges);
        assert!(
            shrunk.minimal.writes <= 1 && shrunk.minimal.replicas <= 2,
            "{position:?}: shrunk to {}",
            shrunk.sizes()
        );
    }
    let pinned = judge(&wrong_delta_counterexample(), 0, &|_| LwwMap::planted()).expect("valid");
    assert_eq!(pinned.report.verdict, Verdict::Diverges);
    let correct = judge(&wrong_delta_counterexample(), 0, &|_| LwwMap::default()).expect("valid");
    assert_eq!(correct.report.verdict, Verdict::Converges);
}

#[test]
fn delta_sync_refuses_a_type_without_deltas() {
    let error = judge(&delta_sync(DeltaPosition::LogPosition), 0, &|_| {
        AddingCounter::default()
    })
    .err()
    .expect("a type without deltas cannot run under delta sync");
    assert_eq!(error.path, "protocol.kind");
    assert!(
        error.message.contains("AddingCounter") && error.message.contains("DeltaCrdt"),
        "{}",
        error.message
    );
}

fn assert_passes_every_seed_with<C: OpCrdt>(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    make: &dyn Fn(ReplicaId) -> C,
) {
    for seed in seeds {
        let report = judge(scenario, seed, &make).expect("valid scenario").report;
        assert_eq!(
            report.verdict,
            Verdict::Converges,
            "false alarm on {} seed {seed}: {:?}",
            scenario.name,
            report.violations.first().map(|v| &v.detail)
        );
    }
}

#[test]
fn correct_configurations_raise_no_false_alarm() {
    let seeds = seed_range(0..40);
    let mut peer_id = busy("peer-id-grid-lossy-anti-entropy");
    peer_id.clock = ClockKind::PerKeyCounter;
    peer_id.protocol.topology = Topology::Relay;
    peer_id.protocol.anti_entropy = Some(secs(1));
    peer_id.network.drop = 0.1;
    peer_id.network.duplicate = 0.1;
    assert_passes_every_seed(&peer_id, seeds.clone());

    let mut dict = busy("lww-dict-remove-bias-reliable-causal");
    dict.crdt = CrdtSpec::LwwDict(LwwDictConfig {
        bias: Bias::Remove,
        tie_break: TieBreak::PeerId,
    });
    dict.protocol.kind = ProtocolKind::ReliableCausal;
    dict.workload.remove_ratio = 0.3;
    dict.network.drop = 0.1;
    assert_passes_every_seed(&dict, seeds.clone());

    let mut delta = busy("delta-sync");
    delta.protocol.kind = ProtocolKind::DeltaSync;
    delta.network.drop = 0.1;
    delta.faults.push(FaultSpec::Join {
        at: secs(2),
        replica: 2,
    });
    assert_passes_every_seed(&delta, seeds.clone());

    // The same adding counter's correct twin is idempotent: under duplicating op broadcast,
    // every duplicate reaches its apply and changes nothing.
    assert_passes_every_seed_with(&duplicating_op_broadcast(), seeds.clone(), &|_| {
        converge_crdt::LwwGrid::new(LwwGridConfig::default())
    });

    // A user type's own deltas, shipped and merged by delta sync in both position modes.
    for position in [DeltaPosition::LogPosition, DeltaPosition::VersionVector] {
        let mut user_deltas = delta_sync(position);
        user_deltas.faults.push(FaultSpec::Join {
            at: secs(2),
            replica: 2,
        });
        user_deltas.faults.push(FaultSpec::Crash {
            at: secs(1),
            replica: 1,
            restart: Some(secs(3)),
            state: Durability::Volatile,
        });
        assert_passes_every_seed_with(&user_deltas, seeds.clone(), &|_| LwwMap::default());
    }

    // The RGA list: deltas shipped by delta sync to a late joiner and to a replica that lost its
    // state (and reuses its stamps after restarting), and ops out of order and twice under op
    // broadcast with anti-entropy.
    let mut list_deltas = busy("rga-delta-sync");
    list_deltas.crdt = CrdtSpec::Rga;
    list_deltas.protocol.kind = ProtocolKind::DeltaSync;
    list_deltas.workload.keys = 1_000_000;
    list_deltas.workload.remove_ratio = 0.3;
    list_deltas.network.drop = 0.1;
    list_deltas.faults.push(FaultSpec::Join {
        at: secs(2),
        replica: 2,
    });
    list_deltas.faults.push(FaultSpec::Crash {
        at: secs(1),
        replica: 1,
        restart: Some(secs(3)),
        state: Durability::Volatile,
    });
    assert_passes_every_seed(&list_deltas, seeds.clone());
    let mut list_ops = busy("rga-op-broadcast-anti-entropy");
    list_ops.crdt = CrdtSpec::Rga;
    list_ops.protocol.kind = ProtocolKind::OpBroadcast;
    list_ops.protocol.anti_entropy = Some(secs(1));
    list_ops.workload.keys = 1_000_000;
    list_ops.workload.remove_ratio = 0.3;
    list_ops.network.drop = 0.2;
    list_ops.network.duplicate = 0.2;
    assert_passes_every_seed(&list_ops, seeds.clone());

    for (name, crdt) in [
        (
            "merkle-grid-lossy",
            CrdtSpec::LwwGrid(LwwGridConfig::default()),
        ),
        (
            "merkle-dict-lossy",
            CrdtSpec::LwwDict(LwwDictConfig::default()),
        ),
    ] {
        assert_passes_every_seed(&merkle_lossy(name, crdt), seeds.clone());
    }
}

/// Merkle anti-entropy under loss, duplication, a late joiner, a volatile crash and removes: the
/// range exchange alone brings every replica every update.
fn merkle_lossy(name: &str, crdt: CrdtSpec) -> Scenario {
    let mut merkle = busy(name);
    merkle.crdt = crdt;
    merkle.protocol.kind = ProtocolKind::MerkleAntiEntropy;
    merkle.protocol.interval = SimDuration::from_ms(500);
    merkle.workload.keys = 40;
    merkle.workload.rate = 8.0;
    merkle.workload.remove_ratio = 0.2;
    merkle.network.drop = 0.2;
    merkle.network.duplicate = 0.1;
    merkle.faults.push(FaultSpec::Join {
        at: secs(1),
        replica: 2,
    });
    merkle.faults.push(FaultSpec::Crash {
        at: secs(2),
        replica: 1,
        restart: Some(secs(3)),
        state: Durability::Volatile,
    });
    merkle
}

#[test]
fn merkle_anti_entropy_refuses_a_crdt_without_key_ranges() {
    let mut scenario = busy("merkle-counter");
    scenario.protocol.kind = ProtocolKind::MerkleAntiEntropy;
    let error = judge(&scenario, 0, &|_| SummingCounter::default())
        .err()
        .expect("a counter has no key ranges");
    assert_eq!(error.path, "protocol.kind");
    assert!(
        error
            .message
            .starts_with("merkle-anti-entropy compares and exchanges key ranges")
            && error.message.contains("SummingCounter")
            && error.message.contains("StateCrdt::key_bound"),
        "{error}"
    );
}

/// Op stream over a relay's in-order connections, with the given reconnect behaviour, and each
/// client's connection to the server dropping once while ops are streaming.
fn op_stream_over_connections(name: &str, on_reconnect: Reconnect) -> Scenario {
    let mut scenario = busy(name);
    scenario.protocol.kind = ProtocolKind::OpStream;
    scenario.protocol.topology = Topology::Relay;
    scenario.protocol.on_reconnect = on_reconnect;
    scenario.network.in_order = true;
    scenario.network.latency = Latency::Uniform {
        min: SimDuration::from_ms(20),
        max: SimDuration::from_ms(80),
    };
    scenario.settle = secs(10);
    for (client, at_ms) in [(0, 1_000), (1, 2_500), (2, 3_700)] {
        scenario.faults.push(FaultSpec::ConnectionDrop {
            at: SimDuration::from_ms(at_ms),
            nodes: [client, 3],
            reconnect: None,
        });
    }
    scenario
}

/// The first seed below 30 whose verdict is `verdict`, shrunk; the shrunk run must end the same
/// way and be no larger than `replicas` replicas, `writes` writes and one fault.
fn caught_and_shrunk(scenario: &Scenario, verdict: Verdict, replicas: u32, writes: u64) {
    let seed = first_seed_with(scenario, 0..30, verdict)
        .unwrap_or_else(|| panic!("{} was not caught as {verdict:?}", scenario.name));
    let shrunk = converge_checker::shrink_builtin(scenario, seed)
        .expect("valid")
        .expect("the failing run shrinks");
    assert_eq!(shrunk.verdict, verdict);
    assert!(
        shrunk.minimal.replicas <= replicas
            && shrunk.minimal.writes <= writes
            && shrunk.minimal.faults <= 1,
        "{}: shrunk to {}",
        scenario.name,
        shrunk.sizes()
    );
    assert!(
        shrunk.scenario.script.is_some(),
        "the minimal run is scripted"
    );
}

/// The minimal counterexample of the position kept across a reconnect: two clients of a relay
/// (the server is node 2); client 1 writes at 990 ms and streams the op to the server, which it
/// would reach at 1,040 ms, but the connection drops at 1 s and comes back at 2 s. The client
/// keeps its position as if the op had arrived, so it never sends it again: client 0 and the
/// server never hold it, and nothing more is ever sent.
fn kept_position_counterexample(on_reconnect: Reconnect) -> Scenario {
    let mut scenario = op_stream_over_connections("kept-position-minimal", on_reconnect);
    scenario.replicas = 2;
    scenario.workload.rate = 0.0;
    scenario.workload.ops = vec![TimedOp {
        at: SimDuration::from_ms(990),
        replica: 1,
        key: 4,
        value: Some(7),
        ..Default::default()
    }];
    scenario.duration = secs(2);
    scenario.faults = vec![FaultSpec::ConnectionDrop {
        at: secs(1),
        nodes: [1, 2],
        reconnect: Some(secs(2)),
    }];
    scenario.script = Some(Script {
        fates: vec![ScriptedFate {
            message: 0,
            fate: Fate::Deliver {
                after: SimDuration::from_ms(50),
            },
        }],
        ..Script::default()
    });
    scenario
}

/// The minimal counterexample of the echoed handshake: one client of a relay, no write at all;
/// its connection drops at 1 s and comes back at 2 s, both ends say hello, and each answers
/// every hello with its own for the rest of the run.
fn echoed_handshake_counterexample(on_reconnect: Reconnect) -> Scenario {
    let mut scenario = kept_position_counterexample(on_reconnect);
    scenario.name = "echoed-handshake-minimal".into();
    scenario.replicas = 1;
    scenario.workload.ops.clear();
    scenario.faults = vec![FaultSpec::ConnectionDrop {
        at: secs(1),
        nodes: [0, 1],
        reconnect: Some(secs(2)),
    }];
    scenario.script = Some(Script::default());
    scenario
}

#[test]
fn op_stream_keeping_its_position_across_a_reconnect_stalls() {
    let scenario = op_stream_over_connections("op-stream-keep-position", Reconnect::KeepPosition);
    caught_and_shrunk(&scenario, Verdict::Stalled, 2, 12);
    let pinned =
        judge_builtin(&kept_position_counterexample(Reconnect::KeepPosition), 0).expect("valid");
    assert_eq!(pinned.verdict, Verdict::Stalled);
    assert!(
        pinned
            .violations
            .iter()
            .any(|v| v.detail.contains("replica 0 lacks 1 (r1#1)")),
        "{:?}",
        pinned.violations
    );
    let fixed =
        judge_builtin(&kept_position_counterexample(Reconnect::Handshake), 0).expect("valid");
    assert_eq!(fixed.verdict, Verdict::Converges);
}

#[test]
fn op_stream_answering_every_hello_with_a_hello_loops() {
    let scenario = op_stream_over_connections("op-stream-echo", Reconnect::EchoHandshake);
    caught_and_shrunk(&scenario, Verdict::SyncLoop, 1, 0);
    let pinned = judge_builtin(
        &echoed_handshake_counterexample(Reconnect::EchoHandshake),
        0,
    )
    .expect("valid");
    assert_eq!(pinned.verdict, Verdict::SyncLoop);
    let liveness = pinned
        .violations
        .iter()
        .find(|v| v.oracle == converge_checker::Oracle::Liveness)
        .expect("a liveness violation");
    assert!(liveness.detail.contains("between n"), "{}", liveness.detail);
    assert_eq!(liveness.replicas, vec![0, 1], "both ends keep talking");
    let fixed =
        judge_builtin(&echoed_handshake_counterexample(Reconnect::Handshake), 0).expect("valid");
    assert_eq!(fixed.verdict, Verdict::Converges);
}

#[test]
fn correct_configurations_over_connections_raise_no_false_alarm() {
    let seeds = seed_range(0..40);
    // Connections that drop while ops stream, duplicates, a late joiner and crashes of either
    // kind: the handshake resumes every stream where the other end got to.
    let mut stream = op_stream_over_connections("op-stream-handshake", Reconnect::Handshake);
    stream.network.duplicate = 0.1;
    stream.faults.push(FaultSpec::Crash {
        at: secs(1),
        replica: 1,
        restart: Some(secs(3)),
        state: Durability::Volatile,
    });
    stream.faults.push(FaultSpec::Crash {
        at: secs(2),
        replica: 0,
        restart: Some(SimDuration::from_ms(2_200)),
        state: Durability::Durable,
    });
    assert_passes_every_seed(&stream, seeds.clone());
    let mut joining = op_stream_over_connections("op-stream-join", Reconnect::Handshake);
    joining.faults.push(FaultSpec::Join {
        at: secs(2),
        replica: 2,
    });
    assert_passes_every_seed(&joining, seeds.clone());
    // State broadcast over the same connections resends both states on a reconnect.
    let mut state = op_stream_over_connections("state-broadcast-connections", Reconnect::Handshake);
    state.protocol.kind = ProtocolKind::StateBroadcast;
    state.clock = ClockKind::PerKeyCounter;
    assert_passes_every_seed(&state, seeds);
}
