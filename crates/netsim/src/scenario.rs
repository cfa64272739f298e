//! The scenario: everything a run needs besides its seed, as plain data.
//!
//! These types are what scenario files (TOML or JSON) deserialize into; every field has a documented
//! default, unknown keys are refused, and [`Scenario::validate`] refuses what deserializes but cannot
//! run (a partition naming replica 7 of 3, a probability above one). docs/scenarios.md documents the
//! keys for users.

use converge_crdt::{ClockKind, LwwDictConfig, LwwGridConfig, ReplicaId, WorkloadIntent};
use serde::{Deserialize, Serialize};

use crate::outcome::NodeId;
use crate::time::SimDuration;

/// One scenario. The defaults describe a small healthy run: 3 replicas of a 3x3 grid, state
/// broadcast over a full mesh, 10 s of writes at 2 per second per replica, 5 s of settling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A short name, used in reports and file names.
    pub name: String,
    /// What the scenario shows, in a sentence or two.
    pub description: String,
    /// Number of replicas (clients). A relay server, when the topology has one, is extra.
    pub replicas: u32,
    pub crdt: CrdtSpec,
    /// The clock every replica stamps its writes with. Default: Lamport.
    pub clock: ClockKind,
    pub protocol: ProtocolSpec,
    /// How long the workload and the faults run.
    pub duration: SimDuration,
    /// A quiet period after `duration` with no new writes or faults, before convergence is judged.
    /// Protocols keep running (anti-entropy, retransmissions) during it.
    pub settle: SimDuration,
    pub network: NetworkSpec,
    pub workload: WorkloadSpec,
    /// Faults scheduled in time, in any order.
    pub faults: Vec<FaultSpec>,
    /// Swarm mode: draw extra faults from the seed.
    pub swarm: Option<SwarmSpec>,
    /// Scripted mode: explicit message fates and coin flips instead of randomness.
    pub script: Option<Script>,
    pub bounds: Bounds,
    /// What the run is expected to show. Without it, convergence is expected.
    pub expect: Expect,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "unnamed".to_string(),
            description: String::new(),
            replicas: 3,
            crdt: CrdtSpec::default(),
            clock: ClockKind::Lamport,
            protocol: ProtocolSpec::default(),
            duration: SimDuration::from_secs(10),
            settle: SimDuration::from_secs(5),
            network: NetworkSpec::default(),
            workload: WorkloadSpec::default(),
            faults: Vec::new(),
            swarm: None,
            script: None,
            bounds: Bounds::default(),
            expect: Expect::default(),
        }
    }
}

/// Which CRDT every replica runs. In files: `[crdt] kind = "lww-grid"` plus the type's options;
/// every key is optional, `kind` included (the LWW grid). [`CrdtSpec::dispatch`] maps a kind to
/// its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "CrdtTable")]
pub enum CrdtSpec {
    LwwGrid(LwwGridConfig),
    LwwDict(LwwDictConfig),
    /// The RGA list ([`converge_crdt::Rga`]), which has no options.
    Rga,
}

/// A `[crdt]` table as written: any subset of the keys. An internally tagged enum would require
/// `kind`, which the documentation promises is optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CrdtTable {
    kind: Option<CrdtKind>,
    rows: Option<u32>,
    cols: Option<u32>,
    tie_break: Option<converge_crdt::TieBreak>,
    bias: Option<converge_crdt::Bias>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CrdtKind {
    LwwGrid,
    LwwDict,
    Rga,
}

impl TryFrom<CrdtTable> for CrdtSpec {
    type Error = String;

    fn try_from(table: CrdtTable) -> Result<Self, String> {
        let only = |key: &str, kind: &str| {
            format!(
                "key `{key}` applies to kind = \"{kind}\" only (`kind` defaults to \"lww-grid\")"
            )
        };
        match table.kind.unwrap_or(CrdtKind::LwwGrid) {
            CrdtKind::LwwGrid => {
                if table.bias.is_some() {
                    return Err(only("bias", "lww-dict"));
                }
                let defaults = LwwGridConfig::default();
                Ok(CrdtSpec::LwwGrid(LwwGridConfig {
                    rows: table.rows.unwrap_or(defaults.rows),
                    cols: table.cols.unwrap_or(defaults.cols),
                    tie_break: table.tie_break.unwrap_or(defaults.tie_break),
                }))
            }
            CrdtKind::LwwDict => {
                if table.rows.is_some() || table.cols.is_some() {
                    let key = if table.rows.is_some() { "rows" } else { "cols" };
                    return Err(only(key, "lww-grid"));
                }
                let defaults = LwwDictConfig::default();
                Ok(CrdtSpec::LwwDict(LwwDictConfig {
                    bias: table.bias.unwrap_or(defaults.bias),
                    tie_break: table.tie_break.unwrap_or(defaults.tie_break),
                }))
            }
            CrdtKind::Rga => {
                let given = [
                    ("rows", table.rows.is_some()),
                    ("cols", table.cols.is_some()),
                    ("tie-break", table.tie_break.is_some()),
                    ("bias", table.bias.is_some()),
                ];
                match given.iter().find(|(_, given)| *given) {
                    Some((key, _)) => Err(format!(
                        "key `{key}` does not apply to kind = \"rga\", which has no options"
                    )),
                    None => Ok(CrdtSpec::Rga),
                }
            }
        }
    }
}

impl Default for CrdtSpec {
    fn default() -> Self {
        CrdtSpec::LwwGrid(LwwGridConfig::default())
    }
}

/// How replicas exchange updates.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolKind {
    /// The whole state to every peer on each local change.
    #[default]
    StateBroadcast,
    /// The whole state to `fanout` random peers every `interval`, and nothing else.
    AntiEntropy,
    /// Each op once to every peer, fire-and-forget.
    OpBroadcast,
    /// Ops with acks, retransmission with exponential backoff, and a causal delivery buffer.
    ReliableCausal,
    /// Every `interval`, each replica asks its peers for the changes since its last known position
    /// in their logs; a joiner first gets a snapshot (unless `snapshot_on_join = false`).
    DeltaSync,
    /// Every `interval`, each replica compares digests of key ranges with `fanout` random peers,
    /// descending only into the ranges that differ, and exchanges the entries of those alone.
    MerkleAntiEntropy,
    /// Ops streamed over connections from where each peer's stream left off, acknowledged, with
    /// what happens at a reconnect chosen by `on-reconnect`.
    OpStream,
}

impl ProtocolKind {
    /// The name scenario files and reports use.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::StateBroadcast => "state-broadcast",
            ProtocolKind::AntiEntropy => "anti-entropy",
            ProtocolKind::OpBroadcast => "op-broadcast",
            ProtocolKind::ReliableCausal => "reliable-causal",
            ProtocolKind::DeltaSync => "delta-sync",
            ProtocolKind::MerkleAntiEntropy => "merkle-anti-entropy",
            ProtocolKind::OpStream => "op-stream",
        }
    }
}

/// Who talks to whom.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// Every replica sends to every other replica.
    #[default]
    Mesh,
    /// Star: replicas talk only to a relay server (an extra node), which forwards every message to
    /// every other connected client, as the WebSocket tutorial's server does.
    Relay,
    /// Each message goes to `fanout` peers drawn from the seed.
    Gossip,
}

/// How a delta-sync replica names what it already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeltaPosition {
    /// A position in the sender's change log; the log is pruned below the slowest peer's position.
    #[default]
    LogPosition,
    /// A version vector: the highest contiguous update sequence number seen from each origin.
    VersionVector,
}

/// The replication protocol and topology. Defaults: state broadcast over a full mesh.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProtocolSpec {
    pub kind: ProtocolKind,
    pub topology: Topology,
    /// Peers per gossip message or per anti-entropy round. Default 2.
    pub fanout: u32,
    /// Period of anti-entropy rounds and of delta-sync polls. Default 1 s.
    pub interval: SimDuration,
    /// Also run periodic full-state anti-entropy every this often on top of `kind` (state broadcast
    /// or op broadcast). Default: off.
    pub anti_entropy: Option<SimDuration>,
    /// A joining or restarting replica gets a snapshot of the state (from the relay server, or from a
    /// peer). Default true. `false` reproduces the late joiner that sees nothing.
    pub snapshot_on_join: bool,
    /// Reliable causal: first retransmission timeout, doubled on each retry. Default 200 ms.
    pub retransmit_timeout: SimDuration,
    /// Reliable causal: retransmissions of one message before giving up. Default 10.
    pub retransmit_max: u32,
    /// Delta sync: how positions are named. Default log position.
    pub delta_position: DeltaPosition,
    /// Op stream: what a node does when a connection comes back. Default handshake.
    #[serde(skip_serializing_if = "is_default_reconnect")]
    pub on_reconnect: Reconnect,
}

/// What an op-stream node does when a dropped connection comes back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reconnect {
    /// Both ends say how far they got in the other's log and resume from there.
    #[default]
    Handshake,
    /// A real bug: the sender keeps its position, as if what was in flight had arrived (a stall).
    KeepPosition,
    /// A real bug: each end answers every hello with its own (a sync loop).
    EchoHandshake,
}

fn is_default_reconnect(value: &Reconnect) -> bool {
    *value == Reconnect::Handshake
}

impl Default for ProtocolSpec {
    fn default() -> Self {
        ProtocolSpec {
            kind: ProtocolKind::StateBroadcast,
            topology: Topology::Mesh,
            fanout: 2,
            interval: SimDuration::from_secs(1),
            anti_entropy: None,
            snapshot_on_join: true,
            retransmit_timeout: SimDuration::from_ms(200),
            retransmit_max: 10,
            delta_position: DeltaPosition::LogPosition,
            on_reconnect: Reconnect::Handshake,
        }
    }
}

/// One-way latency of a message. Drawn per message from the network stream, then clamped to
/// `[min, max]` of the link. Different draws for messages on one link reorder them (jitter).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Latency {
    Constant {
        value: SimDuration,
    },
    Uniform {
        min: SimDuration,
        max: SimDuration,
    },
    Exponential {
        mean: SimDuration,
    },
    Normal {
        mean: SimDuration,
        stddev: SimDuration,
    },
    /// Heavy-tailed: `scale / u^(1/shape)` for uniform `u`.
    Pareto {
        scale: SimDuration,
        shape: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Uniform {
            min: SimDuration::from_ms(10),
            max: SimDuration::from_ms(50),
        }
    }
}

/// The network every link starts with, and overrides for some links.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkSpec {
    pub latency: Latency,
    /// Lower clamp on any drawn latency. Default 1 ms.
    pub latency_min: SimDuration,
    /// Upper clamp on any drawn latency. Default 10 s.
    pub latency_max: SimDuration,
    /// Probability that a message is lost. Default 0.
    pub drop: f64,
    /// Probability that a message is delivered twice (the copy with its own latency). Default 0.
    pub duplicate: f64,
    /// Per-link overrides, applied in order; later ones win.
    pub links: Vec<LinkSpec>,
    /// Whether messages are still lost at random during the settle period. Default
    /// [`SettleDrop::None`].
    pub settle_drop: SettleDrop,
    /// Whether every link delivers in the order it was given messages (per-link FIFO), as a TCP
    /// connection or a WebSocket does: a message never overtakes one sent before it on the same
    /// link, whatever latency it drew. Duplicates still happen only if `duplicate` asks for
    /// them. Default false (each message draws its own latency, so jitter reorders).
    #[serde(skip_serializing_if = "is_false")]
    pub in_order: bool,
    /// How long a dropped connection stays down when its `connection-drop` fault names no
    /// `reconnect` time. Default 1 s.
    #[serde(skip_serializing_if = "is_default_reconnect_after")]
    pub reconnect_after: SimDuration,
}

/// The default of `network.reconnect-after`.
pub const RECONNECT_AFTER_DEFAULT: SimDuration = SimDuration::from_secs(1);

/// Keys added after scenarios were first saved are left out at their defaults, so that those
/// scenarios keep their run ids.
fn is_false(value: &bool) -> bool {
    !*value
}

fn is_default_reconnect_after(value: &SimDuration) -> bool {
    *value == RECONNECT_AFTER_DEFAULT
}

/// Random message loss during the settle period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettleDrop {
    /// The settle period is quiescent: no message is lost at random (neither by the default drop
    /// probability nor by a link override), so a correct protocol can finish what it started.
    /// Scheduled faults (partitions, crashes, outages) still hold until their own end. Without
    /// this, every finite settle period has runs that end with an update still being
    /// retransmitted: with drop 0.1 and the backoff capped at 1.6 s, about one run in 10,000 of
    /// a reliable broadcast lost the same message five times in a row after the last write.
    #[default]
    None,
    /// The drop probabilities stay in force while settling.
    AsConfigured,
}

impl NetworkSpec {
    /// Whether any link delivers in order.
    pub fn links_in_order(&self) -> bool {
        self.in_order || self.links.iter().any(|link| link.in_order == Some(true))
    }
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            latency: Latency::default(),
            latency_min: SimDuration::from_ms(1),
            latency_max: SimDuration::from_secs(10),
            drop: 0.0,
            duplicate: 0.0,
            links: Vec::new(),
            settle_drop: SettleDrop::None,
            in_order: false,
            reconnect_after: RECONNECT_AFTER_DEFAULT,
        }
    }
}

/// An override for the links from `from` to `to` (either omitted: any node). The relay server is
/// node number `replicas`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LinkSpec {
    pub from: Option<ReplicaId>,
    pub to: Option<ReplicaId>,
    pub latency: Option<Latency>,
    pub drop: Option<f64>,
    pub duplicate: Option<f64>,
    /// Whether these links deliver in order (see [`NetworkSpec::in_order`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_order: Option<bool>,
}

/// The writes replicas make. Generated writes follow a Poisson process per writer; `ops` lists
/// explicit writes at given times (both may be used together; set `rate = 0` for explicit only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkloadSpec {
    /// Writes per second per writing replica. Default 2.
    pub rate: f64,
    /// Keys (grid cells, dictionary keys) written, drawn uniformly from `0..keys`. Small = many
    /// conflicts. Default 9.
    pub keys: u32,
    /// Values drawn uniformly from `1..=values`. Default 1000.
    pub values: u64,
    /// Share of generated writes that are removes. Default 0.
    pub remove_ratio: f64,
    /// Replicas that write; default all.
    pub writers: Option<Vec<ReplicaId>>,
    /// Generated writes stop at this time; default `duration`.
    pub stop: Option<SimDuration>,
    /// Explicit writes.
    pub ops: Vec<TimedOp>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            rate: 2.0,
            keys: 9,
            values: 1_000,
            remove_ratio: 0.0,
            writers: None,
            stop: None,
            ops: Vec::new(),
        }
    }
}

/// One explicit write at `replica` at time `at`: for a built-in type (key/value intents), a put
/// of `value` under `key`, or a remove of `key` where `value` is absent; for a type with intents
/// of its own, `intent`, the intent's serde form (`intent = { kind = "insert", at = 0, text = "a"
/// }` for an enum tagged `kind`), in which case `key` and `value` are not given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TimedOpFile", into = "TimedOpFile")]
pub struct TimedOp {
    pub at: SimDuration,
    pub replica: ReplicaId,
    pub key: u32,
    pub value: Option<u64>,
    pub intent: Option<serde_json::Value>,
    /// An intent the type's generator draws when the write happens, from a seed, simplified by
    /// some steps: the form shrinking works on (an intent drawn in the state the replica is in
    /// lands where it can, an insert at a position that exists). Never written to a file: a
    /// shrunk scenario lists the intents that were drawn.
    pub drawn: Option<DrawnIntent>,
}

/// A [`TimedOp`] as a file writes it: a write of a type's own intent has no key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TimedOpFile {
    at: SimDuration,
    replica: ReplicaId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<serde_json::Value>,
}

impl From<TimedOpFile> for TimedOp {
    fn from(file: TimedOpFile) -> Self {
        TimedOp {
            at: file.at,
            replica: file.replica,
            key: file.key.unwrap_or(0),
            value: file.value,
            intent: file.intent,
            drawn: None,
        }
    }
}

impl From<TimedOp> for TimedOpFile {
    fn from(op: TimedOp) -> Self {
        TimedOpFile {
            at: op.at,
            replica: op.replica,
            key: (op.intent.is_none() || op.key != 0).then_some(op.key),
            value: op.value,
            intent: op.intent,
        }
    }
}

impl TimedOp {
    /// A write of `intent` at `replica` at `at`, as a scenario file writes it: as a key and a
    /// value where the intent is one, otherwise as its serde form.
    pub fn of_intent<I: WorkloadIntent>(at: SimDuration, replica: ReplicaId, intent: &I) -> Self {
        match intent.as_key_value() {
            Some((key, value)) => TimedOp {
                at,
                replica,
                key,
                value,
                ..TimedOp::default()
            },
            None => TimedOp {
                at,
                replica,
                intent: Some(intent_value(intent)),
                ..TimedOp::default()
            },
        }
    }
}

/// `intent`'s serde form without the fields that hold nothing (`None`), which TOML cannot write
/// and serde reads back as `None` when they are absent.
pub fn intent_value<I: WorkloadIntent>(intent: &I) -> serde_json::Value {
    fn without_nulls(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(fields) => fields
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
            serde_json::Value::Array(items) => items.into_iter().map(without_nulls).collect(),
            other => other,
        }
    }
    // A type's intent is plain data: serializing it into a value cannot fail unless its
    // `Serialize` does, which is a bug of the type.
    without_nulls(serde_json::to_value(intent).expect("an intent serializes to a value"))
}

/// See [`TimedOp::drawn`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrawnIntent {
    pub seed: u64,
    /// See [`crate::IntentDraw::simplified`].
    pub simplified: Vec<bool>,
}

/// Which way a partition cuts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// No message crosses between groups.
    #[default]
    Both,
    /// Messages from the first group to the others are lost; the other way still works.
    OneWay,
}

/// Whether a crashed replica keeps its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// State survives the crash (written to disk).
    #[default]
    Durable,
    /// State is lost; the replica restarts empty and catches up through the protocol.
    Volatile,
}

/// A fault scheduled in time. In files: `[[faults]] kind = "partition" ...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Split the nodes into groups; nodes not listed form one more group. Heals at `heal` (never,
    /// if absent).
    Partition {
        at: SimDuration,
        heal: Option<SimDuration>,
        groups: Vec<Vec<ReplicaId>>,
        #[serde(default)]
        direction: Direction,
    },
    /// Cut one replica off from everyone.
    Isolate {
        at: SimDuration,
        heal: Option<SimDuration>,
        replica: ReplicaId,
    },
    /// Two groups that cannot reach each other except through `bridge`, which reaches both.
    Bridge {
        at: SimDuration,
        heal: Option<SimDuration>,
        groups: Vec<Vec<ReplicaId>>,
        bridge: ReplicaId,
    },
    /// The replica stops; it restarts at `restart` (never, if absent).
    Crash {
        at: SimDuration,
        replica: ReplicaId,
        restart: Option<SimDuration>,
        #[serde(default)]
        state: Durability,
    },
    /// The replica starts at `at` instead of at time zero.
    Join { at: SimDuration, replica: ReplicaId },
    /// The replica leaves for good at `at`; it is no longer judged.
    Leave { at: SimDuration, replica: ReplicaId },
    /// The replica's physical clock is off by `offset_us` and runs `drift_ppm` fast (or slow).
    ClockSkew {
        replica: ReplicaId,
        #[serde(default)]
        offset_us: i64,
        #[serde(default)]
        drift_ppm: i64,
    },
    /// The relay server is down from `at` until `until`: messages to and from it are lost.
    ServerOutage { at: SimDuration, until: SimDuration },
    /// The connection between the two `nodes` drops at `at`: every message in flight on it, in
    /// either direction, is lost, and so is every message sent on it until it is back; both ends
    /// are told ([`crate::protocol::Protocol::on_disconnect`]). It comes back at `reconnect`
    /// (default: `network.reconnect-after` later), and both ends are told again
    /// ([`crate::protocol::Protocol::on_connect`]). In a relay the connections are the links
    /// between a client and the server (node number `replicas`).
    ConnectionDrop {
        at: SimDuration,
        nodes: [NodeId; 2],
        #[serde(default)]
        reconnect: Option<SimDuration>,
    },
}

impl FaultSpec {
    /// When a fault's effect ends, if it does: a cut heals, a crashed replica restarts, an
    /// outage ends, a dropped connection comes back (`reconnect_after` after the drop when the
    /// fault names no time). `None` for faults that last (a permanent cut, a crash without
    /// restart) and for those that are events rather than spans.
    pub fn end(&self, reconnect_after: SimDuration) -> Option<SimDuration> {
        match *self {
            FaultSpec::Partition { heal, .. }
            | FaultSpec::Isolate { heal, .. }
            | FaultSpec::Bridge { heal, .. } => heal,
            FaultSpec::Crash { restart, .. } => restart,
            FaultSpec::ServerOutage { until, .. } => Some(until),
            FaultSpec::ConnectionDrop { at, reconnect, .. } => Some(reconnect.unwrap_or(
                SimDuration::from_us(at.us.saturating_add(reconnect_after.us)),
            )),
            FaultSpec::Join { .. } | FaultSpec::Leave { .. } | FaultSpec::ClockSkew { .. } => None,
        }
    }
}

/// Swarm mode: the seed draws `faults` extra faults (partitions, crashes with restart, isolations,
/// late joins, server outages) and the network's drop and duplicate probabilities up to the bounds
/// given, so one sweep explores many fault mixes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SwarmSpec {
    /// Extra faults drawn per seed. Default 3.
    pub faults: u32,
    /// Upper bound of the drawn drop probability. Default 0.2.
    pub drop_max: f64,
    /// Upper bound of the drawn duplicate probability. Default 0.2.
    pub duplicate_max: f64,
}

impl Default for SwarmSpec {
    fn default() -> Self {
        SwarmSpec {
            faults: 3,
            drop_max: 0.2,
            duplicate_max: 0.2,
        }
    }
}

/// Scripted mode: the network makes no random choice. Messages are numbered in the order they are
/// sent (0, 1, 2, ...); each listed message gets its fate, every other one is delivered after
/// `latency`. Random tie-breaks take their flips from `coins` in order (then `false`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Script {
    /// Latency of messages without a listed fate. Default 10 ms.
    pub latency: SimDuration,
    pub fates: Vec<ScriptedFate>,
    pub coins: Vec<bool>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            latency: SimDuration::from_ms(10),
            fates: Vec::new(),
            coins: Vec::new(),
        }
    }
}

/// The fate of message number `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScriptedFate {
    pub message: u64,
    pub fate: Fate,
}

/// What the network does with one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fate {
    Deliver {
        after: SimDuration,
    },
    Drop,
    /// Delivered twice, after `after` and after `again`.
    Duplicate {
        after: SimDuration,
        again: SimDuration,
    },
}

/// Named limits. Reaching one ends the run with a reported "bound reached" outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bounds {
    /// Events processed. Default 20 million.
    pub events_max: u64,
    /// Messages in flight at once. Default 1 million.
    pub in_flight_max: u64,
    /// Memory held by messages in flight, in bytes: each copy is charged 64 bytes plus what it
    /// holds (a state's size, the delivered-update set a state carries, one bit per update
    /// issued, and lists of updates; a user's protocol says what its messages hold), so that many
    /// large states in flight end the run instead of exhausting memory. Default 1 GiB.
    pub in_flight_bytes_max: u64,
    /// Updates issued in the whole run. Default 1 million.
    pub updates_max: u64,
    /// Trace events kept in memory for reports (the hash covers all of them). Default 100,000.
    pub trace_events_kept_max: u64,
    /// After the network healed and the writes ended, messages that may flow while no replica
    /// learns anything before the run is judged a sync loop: a chain of this many deliveries
    /// each of which changed nothing and sent the next, or this many messages in the quiet
    /// tail of a run whose replicas still differ. Default 100.
    #[serde(skip_serializing_if = "is_default_sync_loop_messages")]
    pub sync_loop_messages: u64,
    /// Update records kept in the outcome by protocols that send whole states (state broadcast,
    /// anti-entropy): the first this many. Their messages never refer to an update, and the
    /// oracles watch each write as it happens, so a long run need not hold one record per write
    /// (shrinking, which lists every write, runs the seed again with all of them). Op-based
    /// protocols keep every record, since their messages and logs refer to them. Default 100,000.
    pub update_records_kept_max: u64,
    /// Trace events copied into a run's report, and so drawn on its page and written to its
    /// Perfetto and ShiViz exports: the first this many (never more than `trace_events_kept_max`).
    /// A report that stops short says so, and so do its exports. Default 2,000.
    #[serde(skip_serializing_if = "is_default_report_events")]
    pub report_events_max: u64,
}

/// The default of `bounds.sync-loop-messages`.
pub const SYNC_LOOP_MESSAGES_DEFAULT: u64 = 100;

fn is_default_sync_loop_messages(value: &u64) -> bool {
    *value == SYNC_LOOP_MESSAGES_DEFAULT
}

/// The default of `bounds.report-events-max`.
pub const REPORT_EVENTS_MAX_DEFAULT: u64 = 2_000;

/// Left out of a serialized scenario at its default, so that scenarios written before the key
/// existed keep their run ids.
fn is_default_report_events(value: &u64) -> bool {
    *value == REPORT_EVENTS_MAX_DEFAULT
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            events_max: 20_000_000,
            in_flight_max: 1_000_000,
            in_flight_bytes_max: 1 << 30,
            updates_max: 1_000_000,
            trace_events_kept_max: 100_000,
            sync_loop_messages: SYNC_LOOP_MESSAGES_DEFAULT,
            update_records_kept_max: 100_000,
            report_events_max: REPORT_EVENTS_MAX_DEFAULT,
        }
    }
}

/// The verdicts a scenario can expect, from best to worst.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every live replica holds the same state and every update, and no oracle complains.
    #[default]
    Converges,
    /// Replicas converge, but the intent oracle found causally later writes that lost.
    IntentViolated,
    /// After settling, live replicas still differ (some lack updates); strong convergence held.
    NotConverged,
    /// Not converged, and quiet for good: after the network healed and the writes ended,
    /// nothing was in flight and no timer sent, yet live replicas differ or lack updates.
    Stalled,
    /// After the network healed and the writes ended, messages kept flowing past
    /// `bounds.sync-loop-messages` while no replica learned anything: a chain of that many
    /// deliveries each of which changed nothing and sent the next, or that many messages in
    /// the quiet tail of a run whose replicas still differ.
    SyncLoop,
    /// Strong convergence violated: replicas that delivered the same updates hold different states.
    Diverges,
    /// Code the run called (a user's CRDT or protocol) panicked; the run ended there.
    Panicked,
    /// A named bound was reached before the run ended; nothing is concluded.
    BoundReached,
}

impl Verdict {
    /// Whether a run with this verdict meets an expectation of `expected`. Stalled and sync loop
    /// are the two ways of not converging that can be told apart, so an expectation of
    /// `not-converged` (written before they could) is met by either; every other expectation
    /// only by itself.
    pub fn meets(self, expected: Verdict) -> bool {
        self == expected
            || expected == Verdict::NotConverged
                && matches!(self, Verdict::Stalled | Verdict::SyncLoop)
    }
}

/// What the run is expected to show.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    pub verdict: Verdict,
    /// Upper bound on when replicas converged (virtual time), if the run converges.
    pub converged_by: Option<SimDuration>,
    /// Lower bound on conflicting writes exercised (non-vacuity).
    pub conflicts_min: Option<u64>,
    /// For a sweep of a scenario expected not to converge: the share of seeds (0 to 1) that must
    /// end with the expected verdict. Without it, one such seed is enough: a bug that needs an
    /// equal-stamp tie shows on some seeds, not on all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds_share_min: Option<f64>,
}
