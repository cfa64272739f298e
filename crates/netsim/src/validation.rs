//! Scenario validation: everything that deserializes but cannot run is refused here, with the key
//! path and what was expected, before the simulator starts.
//!
//! Besides shape errors (a fault naming replica 7 of 3), validation enforces the named caps below,
//! so that a hostile or mistyped scenario (a billion replicas, a rate of a billion writes per
//! second, a grid of a trillion cells, a table of a million link overrides) is refused with the key
//! and the cap rather than exhausting memory or running for days. What a valid scenario may still
//! grow (events, messages in flight, updates, kept trace) is bounded while it runs by
//! [`crate::scenario::Bounds`], and reaching one of those ends the run with "bound reached".
//! docs/robustness.md lists every cap and what it protects.

use std::collections::BTreeMap;

use crate::outcome::NodeId;
use crate::scenario::{CrdtSpec, Fate, FaultSpec, Latency, ProtocolKind, Scenario, Topology};
use crate::time::SimDuration;

/// Replicas a scenario may ask for.
pub const REPLICAS_MAX: u32 = 10_000;
/// Cells of a grid. Every oracle looks at whole replica states after events, so the cost of each
/// event grows with the grid; 65,536 cells is a 256 x 256 sheet.
pub const GRID_CELLS_MAX: u64 = 65_536;
/// Grid cells held by all nodes together (each node holds a whole grid): about 50 bytes each, so
/// half a gigabyte of replica state at most.
pub const NODE_CELLS_MAX: u64 = 10_000_000;
/// Virtual time a run may cover (duration plus settle): ten years. Every other duration in a
/// scenario (latencies, intervals, timeouts, fault times) is held to the same cap, so that adding
/// one to the current virtual time can never overflow.
pub const VIRTUAL_TIME_MAX: SimDuration = SimDuration::from_secs(10 * 365 * 24 * 3_600);
/// Writes per second per replica.
pub const RATE_MAX: f64 = 1_000_000.0;
/// Replicas times the updates the workload plans to issue (explicit writes plus the expected
/// generated ones, at most `bounds.updates-max`): what delivered-update sets, delivery vectors and
/// causal dependencies grow with.
pub const REPLICA_UPDATES_MAX: u64 = 1_000_000_000;
/// Explicit writes (`workload.ops`), whatever `bounds.updates-max` says.
pub const OPS_MAX: usize = 1_000_000;
/// Per-link overrides (`network.links`). Every message looks through the whole table, so its
/// length multiplies the cost of every send.
pub const LINKS_MAX: usize = 4_096;
/// Scheduled faults (`faults`). Every send checks the partitions in force.
pub const FAULTS_MAX: usize = 1_000;
/// Group members listed by all partition and bridge faults together (each fault may list every
/// node at most once).
pub const FAULT_GROUP_MEMBERS_MAX: usize = 100_000;
/// Faults swarm mode draws per seed (`swarm.faults`).
pub const SWARM_FAULTS_MAX: u32 = 1_000;
/// Scripted message fates (`script.fates`) and scripted coin flips (`script.coins`), each.
pub const SCRIPT_ENTRIES_MAX: usize = 1_000_000;
/// Characters of the scenario's `name`, which every report file name starts with.
pub const NAME_CHARS_MAX: usize = 100;
/// Dictionary keys held by all nodes together: each node may come to hold every key written (at
/// most `workload.keys`, at most the updates planned), about 100 bytes each with the oracles'
/// copies of its view, so 400 MB of replica state at most. A dictionary of a vast key space
/// written a million times by thousands of replicas used to grow past 8 GB.
pub const NODE_KEYS_MAX: u64 = 4_000_000;

/// Elements of a list (inserts, tombstones included) held by all nodes together: each node may
/// come to hold every insert written (at most about the updates planned), about 100 bytes each
/// with the oracles' copies of its view, so 400 MB of replica state at most.
pub const NODE_LIST_ELEMENTS_MAX: u64 = 4_000_000;

/// The work a scenario file may ask of one run, in units of one grid cell visited by one event
/// (about 2.2 ns on the project's 2-core machine): `bounds.events-max` times what each event may
/// cost. Every event can merge, compare or render a whole replica state (a state delivered and
/// merged, a replica's view compared with the others' and rendered when it is new), so an event
/// costs its fixed part plus the state's size: a 256 x 256 grid under anti-entropy ran 20,000
/// events a second, and 20 million of them would have taken a quarter of an hour. With the
/// shrinker's share (half of `bounds.events-max`, see `converge-checker`'s shrink), a run of a
/// file within this cap finishes, reports included, well within a minute. See
/// [`Scenario::validate_budget`].
pub const RUN_WORK_MAX: u64 = 12_000_000_000;
/// The fixed part of an event's work, in cell visits: queue, network draws, trace, oracles.
pub const EVENT_WORK: u64 = 100;
/// A dictionary key's share of an event's work, in cell visits: merging, comparing and rendering
/// an ordered map costs about 25 times a grid's packed cell per entry.
pub const DICT_KEY_WORK: u64 = 25;
/// A list element's share of an event's work, in cell visits: an op scans the list for its
/// reference and shifts the elements after it, a merge walks both lists (and sorts them when it
/// brings many new elements), a comparison walks both.
pub const LIST_ELEMENT_WORK: u64 = 10;
/// States of more entries than this no longer fit a core's caches, and each entry visited costs
/// about four times as much: a 1,024-cell grid under anti-entropy measured 2.2 ns a cell and
/// event, a 65,536-cell one 7.5 ns.
pub const CACHED_ENTRIES_MAX: u64 = 4_096;
/// A replica's share of an event's work under the protocols that carry a vector of every
/// replica (reliable causal's dependencies, delta sync's version vectors), in cell visits.
pub const VECTOR_REPLICA_WORK: u64 = 1;

/// A scenario that cannot run: the key at fault and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key `{path}`: {message}")]
pub struct ScenarioError {
    /// Dotted key path, e.g. `faults[2].replica`.
    pub path: String,
    pub message: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        path: path.into(),
        message: message.into(),
    }
}

fn probability(path: &str, p: f64) -> Result<(), ScenarioError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(error(
            path,
            format!("expected a probability between 0 and 1, found {p}"),
        ))
    }
}

/// Refuses a list or count above its cap, naming the cap.
fn at_most(
    path: &str,
    what: &str,
    found: u64,
    cap: u64,
    cap_name: &str,
) -> Result<(), ScenarioError> {
    if found > cap {
        return Err(error(
            path,
            format!("found {found} {what}; the cap is {cap} ({cap_name})"),
        ));
    }
    Ok(())
}

/// Why a crash or an outage overlaps the one before it.
fn overlap_message(what: &str, first: usize, end: Option<SimDuration>, at: SimDuration) -> String {
    match end {
        Some(end) => format!(
            "expected {what} again only after faults[{first}] ends at {end}; found {at}, which \
             overlaps it"
        ),
        None => format!(
            "expected {what} again only after faults[{first}] ends, and it never does; found {at}"
        ),
    }
}

fn latency(path: &str, latency: &Latency) -> Result<(), ScenarioError> {
    match *latency {
        Latency::Uniform { min, max } if min > max => Err(error(
            format!("{path}.min"),
            format!("expected min <= max, found {min} > {max}"),
        )),
        Latency::Pareto { shape, .. } if !(shape.is_finite() && shape > 0.0) => Err(error(
            format!("{path}.shape"),
            format!("expected a positive shape, found {shape}"),
        )),
        _ => Ok(()),
    }
}

/// Every duration of a latency distribution, with its key.
fn latency_durations(path: &str, latency: &Latency) -> Vec<(String, SimDuration)> {
    match *latency {
        Latency::Constant { value } => vec![(format!("{path}.value"), value)],
        Latency::Uniform { min, max } => {
            vec![(format!("{path}.min"), min), (format!("{path}.max"), max)]
        }
        Latency::Exponential { mean } => vec![(format!("{path}.mean"), mean)],
        Latency::Normal { mean, stddev } => vec![
            (format!("{path}.mean"), mean),
            (format!("{path}.stddev"), stddev),
        ],
        Latency::Pareto { scale, .. } => vec![(format!("{path}.scale"), scale)],
    }
}

impl Scenario {
    /// Refuses what cannot run. `run` calls this first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        at_most(
            "name",
            "characters",
            self.name.chars().count() as u64,
            NAME_CHARS_MAX as u64,
            "NAME_CHARS_MAX",
        )?;
        if let Some(c) = self.name.chars().find(|c| c.is_control()) {
            return Err(error(
                "name",
                format!(
                    "expected a name without control characters (it names report files and is \
                     printed on terminals), found {}",
                    c.escape_debug()
                ),
            ));
        }
        if self.replicas == 0 {
            return Err(error("replicas", "expected at least one replica, found 0"));
        }
        at_most(
            "replicas",
            "replicas",
            u64::from(self.replicas),
            u64::from(REPLICAS_MAX),
            "REPLICAS_MAX",
        )?;
        let nodes = self.replicas + u32::from(self.protocol.topology == Topology::Relay);
        let replica = |path: String, id: u32| -> Result<(), ScenarioError> {
            if id < self.replicas {
                Ok(())
            } else {
                Err(error(
                    path,
                    format!(
                        "expected a replica number below {}, found {id}",
                        self.replicas
                    ),
                ))
            }
        };
        if let CrdtSpec::LwwGrid(grid) = &self.crdt {
            let cells = u64::from(grid.rows) * u64::from(grid.cols);
            if cells == 0 || cells > GRID_CELLS_MAX {
                return Err(error(
                    "crdt",
                    format!(
                        "expected a grid of 1 to {GRID_CELLS_MAX} cells (GRID_CELLS_MAX), found {} x {} = {cells}",
                        grid.rows, grid.cols
                    ),
                ));
            }
            let node_cells = cells * u64::from(nodes);
            if node_cells > NODE_CELLS_MAX {
                return Err(error(
                    "crdt",
                    format!(
                        "{nodes} nodes each holding a grid of {cells} cells make {node_cells} cells; \
                         the cap is {NODE_CELLS_MAX} (NODE_CELLS_MAX)"
                    ),
                ));
            }
        }
        if let CrdtSpec::LwwDict(_) = &self.crdt {
            let node_keys = self.state_entries_max().saturating_mul(u64::from(nodes));
            if node_keys > NODE_KEYS_MAX {
                return Err(error(
                    "workload.keys",
                    format!(
                        "{nodes} nodes each holding up to {} dictionary keys (workload.keys, at \
                         most the updates planned) make {node_keys} keys; the cap is \
                         {NODE_KEYS_MAX} (NODE_KEYS_MAX)",
                        self.state_entries_max()
                    ),
                ));
            }
        }
        if let CrdtSpec::Rga = &self.crdt {
            let node_elements = self.state_entries_max().saturating_mul(u64::from(nodes));
            if node_elements > NODE_LIST_ELEMENTS_MAX {
                return Err(error(
                    "bounds.updates-max",
                    format!(
                        "{nodes} nodes each holding up to {} list elements (every insert stays, \
                         deleted or not: at most about the updates planned, from workload.rate, \
                         workload.ops and duration, and at most bounds.updates-max) make \
                         {node_elements} elements; the cap is {NODE_LIST_ELEMENTS_MAX} \
                         (NODE_LIST_ELEMENTS_MAX)",
                        self.state_entries_max()
                    ),
                ));
            }
        }
        if self.duration.us.saturating_add(self.settle.us) > VIRTUAL_TIME_MAX.us {
            return Err(error(
                "duration",
                format!(
                    "expected duration + settle of at most {VIRTUAL_TIME_MAX} (VIRTUAL_TIME_MAX), \
                     found {} + {}",
                    self.duration, self.settle
                ),
            ));
        }
        for (path, duration) in self.durations() {
            if duration > VIRTUAL_TIME_MAX {
                return Err(error(
                    path,
                    format!(
                        "expected a duration of at most {VIRTUAL_TIME_MAX} (VIRTUAL_TIME_MAX), found {duration}"
                    ),
                ));
            }
        }
        let protocol = &self.protocol;
        if protocol.fanout == 0 {
            return Err(error("protocol.fanout", "expected at least 1"));
        }
        let periodic = matches!(
            protocol.kind,
            ProtocolKind::AntiEntropy | ProtocolKind::DeltaSync | ProtocolKind::MerkleAntiEntropy
        );
        if periodic && protocol.interval.us == 0 {
            return Err(error("protocol.interval", "expected a positive interval"));
        }
        if protocol.anti_entropy.is_some_and(|i| i.us == 0) {
            return Err(error(
                "protocol.anti-entropy",
                "expected a positive interval",
            ));
        }
        if protocol.kind == ProtocolKind::OpStream && protocol.topology == Topology::Gossip {
            return Err(error(
                "protocol.topology",
                "op-stream streams over connections to fixed peers: expected \"mesh\" or \"relay\", \
                 found \"gossip\"",
            ));
        }
        if protocol.kind == ProtocolKind::ReliableCausal && protocol.retransmit_timeout.us == 0 {
            return Err(error(
                "protocol.retransmit-timeout",
                "expected a positive timeout",
            ));
        }
        let network = &self.network;
        probability("network.drop", network.drop)?;
        probability("network.duplicate", network.duplicate)?;
        latency("network.latency", &network.latency)?;
        if network.latency_min > network.latency_max {
            return Err(error(
                "network.latency-min",
                "expected latency-min <= latency-max",
            ));
        }
        at_most(
            "network.links",
            "link overrides",
            network.links.len() as u64,
            LINKS_MAX as u64,
            "LINKS_MAX",
        )?;
        for (i, link) in network.links.iter().enumerate() {
            for (key, node) in [("from", link.from), ("to", link.to)] {
                if let Some(node) = node.filter(|n| *n >= nodes) {
                    return Err(error(
                        format!("network.links[{i}].{key}"),
                        format!("expected a node below {nodes}, found {node}"),
                    ));
                }
            }
            if let Some(p) = link.drop {
                probability(&format!("network.links[{i}].drop"), p)?;
            }
            if let Some(p) = link.duplicate {
                probability(&format!("network.links[{i}].duplicate"), p)?;
            }
            if let Some(l) = &link.latency {
                latency(&format!("network.links[{i}].latency"), l)?;
            }
        }
        let workload = &self.workload;
        if !(workload.rate.is_finite() && (0.0..=RATE_MAX).contains(&workload.rate)) {
            return Err(error(
                "workload.rate",
                format!(
                    "expected 0 to {RATE_MAX} writes per second (RATE_MAX), found {}",
                    workload.rate
                ),
            ));
        }
        if workload.keys == 0 {
            return Err(error("workload.keys", "expected at least one key"));
        }
        if workload.values == 0 {
            return Err(error("workload.values", "expected at least one value"));
        }
        probability("workload.remove-ratio", workload.remove_ratio)?;
        if let Some(writers) = &workload.writers {
            if writers.len() > self.replicas as usize {
                return Err(error(
                    "workload.writers",
                    format!(
                        "expected at most one entry per replica ({}), found {}",
                        self.replicas,
                        writers.len()
                    ),
                ));
            }
        }
        let mut writers_seen: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, writer) in workload.writers.iter().flatten().enumerate() {
            replica(format!("workload.writers[{i}]"), *writer)?;
            if let Some(first) = writers_seen.insert(*writer, i) {
                return Err(error(
                    format!("workload.writers[{i}]"),
                    format!(
                        "expected each replica at most once; replica {writer} is already \
                         workload.writers[{first}]"
                    ),
                ));
            }
        }
        at_most(
            "workload.ops",
            "explicit writes",
            workload.ops.len() as u64,
            OPS_MAX as u64,
            "OPS_MAX",
        )?;
        for (i, op) in workload.ops.iter().enumerate() {
            replica(format!("workload.ops[{i}].replica"), op.replica)?;
            if op.intent.is_some() && (op.value.is_some() || op.key != 0) {
                return Err(error(
                    format!("workload.ops[{i}].intent"),
                    "an intent stands for the whole write: give either `intent` or `key` and \
                     `value`, not both",
                ));
            }
        }
        if workload.ops.len() as u64 > self.bounds.updates_max {
            return Err(error(
                "workload.ops",
                format!(
                    "expected at most {} explicit writes (bounds.updates-max)",
                    self.bounds.updates_max
                ),
            ));
        }
        let planned = self.planned_updates();
        let replica_updates = u64::from(self.replicas).saturating_mul(planned);
        if replica_updates > REPLICA_UPDATES_MAX {
            return Err(error(
                "replicas",
                format!(
                    "{} replicas times about {planned} planned updates (workload.rate x writers x \
                     workload.stop, plus workload.ops, at most bounds.updates-max) is \
                     {replica_updates}; the cap is {REPLICA_UPDATES_MAX} (REPLICA_UPDATES_MAX)",
                    self.replicas
                ),
            ));
        }
        at_most(
            "faults",
            "faults",
            self.faults.len() as u64,
            FAULTS_MAX as u64,
            "FAULTS_MAX",
        )?;
        let mut group_members_total = 0usize;
        for (i, fault) in self.faults.iter().enumerate() {
            let path = |key: &str| format!("faults[{i}].{key}");
            match fault {
                FaultSpec::Partition { groups, .. } | FaultSpec::Bridge { groups, .. } => {
                    if groups.is_empty() {
                        return Err(error(path("groups"), "expected at least one group"));
                    }
                    let members: usize = groups.iter().map(Vec::len).sum();
                    if members > nodes as usize {
                        return Err(error(
                            path("groups"),
                            format!(
                                "expected each of the {nodes} nodes at most once, found {members} members"
                            ),
                        ));
                    }
                    group_members_total += members;
                    at_most(
                        &path("groups"),
                        "group members in the faults so far",
                        group_members_total as u64,
                        FAULT_GROUP_MEMBERS_MAX as u64,
                        "FAULT_GROUP_MEMBERS_MAX",
                    )?;
                    // Where each node was first listed: a node in two groups (or twice in one)
                    // would be cut off from itself.
                    let mut seen: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
                    for (g, group) in groups.iter().enumerate() {
                        for (m, member) in group.iter().enumerate() {
                            if *member >= nodes {
                                return Err(error(
                                    path(&format!("groups[{g}][{m}]")),
                                    format!("expected a node below {nodes}, found {member}"),
                                ));
                            }
                            if let Some((g0, m0)) = seen.insert(*member, (g, m)) {
                                return Err(error(
                                    path(&format!("groups[{g}][{m}]")),
                                    format!(
                                        "expected each node in at most one group, once; node \
                                         {member} is already groups[{g0}][{m0}]"
                                    ),
                                ));
                            }
                        }
                    }
                    if let FaultSpec::Bridge { bridge, .. } = fault {
                        if *bridge >= nodes {
                            return Err(error(
                                path("bridge"),
                                format!("expected a node below {nodes}, found {bridge}"),
                            ));
                        }
                        if let Some((g, m)) = seen.get(bridge) {
                            return Err(error(
                                path("bridge"),
                                format!(
                                    "expected a node outside the groups it bridges; node \
                                     {bridge} is groups[{g}][{m}]"
                                ),
                            ));
                        }
                    }
                }
                FaultSpec::Isolate { replica: r, .. }
                | FaultSpec::Crash { replica: r, .. }
                | FaultSpec::Join { replica: r, .. }
                | FaultSpec::Leave { replica: r, .. }
                | FaultSpec::ClockSkew { replica: r, .. } => replica(path("replica"), *r)?,
                FaultSpec::ConnectionDrop { nodes: ends, .. } => {
                    self.connection_exists(&path("nodes"), *ends, nodes)?;
                }
                FaultSpec::ServerOutage { at, until } => {
                    if protocol.topology != Topology::Relay {
                        return Err(error(
                            path("kind"),
                            "a server outage needs topology = \"relay\"",
                        ));
                    }
                    if until <= at {
                        return Err(error(
                            path("until"),
                            format!("expected a time after at ({at}), found {until}"),
                        ));
                    }
                }
            }
            if let FaultSpec::ClockSkew { drift_ppm, .. } = fault {
                if !(-999_999..=1_000_000_000).contains(drift_ppm) {
                    return Err(error(
                        path("drift-ppm"),
                        "expected a drift between -999999 and 1000000000 ppm",
                    ));
                }
            }
        }
        self.fault_relations()?;
        if let Some(swarm) = &self.swarm {
            probability("swarm.drop-max", swarm.drop_max)?;
            probability("swarm.duplicate-max", swarm.duplicate_max)?;
            at_most(
                "swarm.faults",
                "drawn faults",
                u64::from(swarm.faults),
                u64::from(SWARM_FAULTS_MAX),
                "SWARM_FAULTS_MAX",
            )?;
        }
        if let Some(script) = &self.script {
            at_most(
                "script.fates",
                "scripted fates",
                script.fates.len() as u64,
                SCRIPT_ENTRIES_MAX as u64,
                "SCRIPT_ENTRIES_MAX",
            )?;
            at_most(
                "script.coins",
                "scripted coin flips",
                script.coins.len() as u64,
                SCRIPT_ENTRIES_MAX as u64,
                "SCRIPT_ENTRIES_MAX",
            )?;
        }
        Ok(())
    }

    /// Refuses a connection that does not exist: a node beyond the network, a node with itself,
    /// or in a relay two clients (they reach each other only through the server).
    fn connection_exists(
        &self,
        path: &str,
        [a, b]: [NodeId; 2],
        nodes: u32,
    ) -> Result<(), ScenarioError> {
        for (end, node) in [(0, a), (1, b)] {
            if node >= nodes {
                return Err(error(
                    format!("{path}[{end}]"),
                    format!("expected a node below {nodes}, found {node}"),
                ));
            }
        }
        if a == b {
            return Err(error(
                path,
                format!("expected two different nodes, found {a} twice"),
            ));
        }
        let server = self.replicas;
        if self.protocol.topology == Topology::Relay && a != server && b != server {
            return Err(error(
                path,
                format!(
                    "nodes {a} and {b} have no connection: in a relay every connection is between                      a client and the server (node {server})"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses faults that deserialize and name existing replicas but whose times or company make
    /// no sense: a cut that heals before it starts, a restart before its crash, an outage that
    /// ends before it begins, a fault that starts after `duration` (the settle period has none),
    /// and, per replica, what the simulator would silently ignore or cut short: a second join, a
    /// second leave, a leave before the join, a crash before the replica joins or after it left,
    /// a restart after it left, two crashes that overlap, two clock skews; and two server outages
    /// that overlap. Called by [`Scenario::validate`] after every key was checked on its own, so
    /// replica numbers are in range here.
    fn fault_relations(&self) -> Result<(), ScenarioError> {
        let duration = self.duration;
        let mut joins: BTreeMap<u32, (usize, SimDuration)> = BTreeMap::new();
        let mut leaves: BTreeMap<u32, (usize, SimDuration)> = BTreeMap::new();
        let mut skews: BTreeMap<u32, usize> = BTreeMap::new();
        // (replica, at, restart, index) of every crash; (at, until, index) of every outage.
        let mut crashes: Vec<(u32, SimDuration, Option<SimDuration>, usize)> = Vec::new();
        let mut outages: Vec<(SimDuration, Option<SimDuration>, usize)> = Vec::new();
        for (i, fault) in self.faults.iter().enumerate() {
            let path = |key: &str| format!("faults[{i}].{key}");
            let (at, end, end_key) = match *fault {
                FaultSpec::Partition { at, heal, .. }
                | FaultSpec::Isolate { at, heal, .. }
                | FaultSpec::Bridge { at, heal, .. } => (Some(at), heal, "heal"),
                FaultSpec::Crash { at, restart, .. } => (Some(at), restart, "restart"),
                FaultSpec::ServerOutage { at, until } => (Some(at), Some(until), "until"),
                FaultSpec::ConnectionDrop { at, reconnect, .. } => {
                    (Some(at), reconnect, "reconnect")
                }
                FaultSpec::Join { at, .. } | FaultSpec::Leave { at, .. } => (Some(at), None, ""),
                FaultSpec::ClockSkew { .. } => (None, None, ""),
            };
            if let Some(at) = at {
                if at > duration {
                    return Err(error(
                        path("at"),
                        format!(
                            "expected a time within duration ({duration}): the settle period \
                             that follows starts no fault; found {at}"
                        ),
                    ));
                }
                if let Some(end) = end.filter(|end| *end <= at) {
                    return Err(error(
                        path(end_key),
                        format!("expected a time after at ({at}), found {end}"),
                    ));
                }
            }
            let already = |what: &str, first: usize| {
                error(
                    path("replica"),
                    format!("expected one {what} per replica; faults[{first}] is already one for this replica"),
                )
            };
            match *fault {
                FaultSpec::Join { at, replica } => {
                    if let Some((first, _)) = joins.insert(replica, (i, at)) {
                        return Err(already("join", first));
                    }
                }
                FaultSpec::Leave { at, replica } => {
                    if let Some((first, _)) = leaves.insert(replica, (i, at)) {
                        return Err(already("leave", first));
                    }
                }
                FaultSpec::ClockSkew { replica, .. } => {
                    if let Some(first) = skews.insert(replica, i) {
                        return Err(already("clock skew", first));
                    }
                }
                FaultSpec::Crash {
                    at,
                    replica,
                    restart,
                    ..
                } => crashes.push((replica, at, restart, i)),
                FaultSpec::ServerOutage { at, until } => outages.push((at, Some(until), i)),
                _ => {}
            }
        }
        for (replica, (leave, left_at)) in &leaves {
            if let Some((join, joined_at)) = joins.get(replica) {
                if left_at <= joined_at {
                    return Err(error(
                        format!("faults[{leave}].at"),
                        format!(
                            "expected replica {replica} to leave after it joins at {joined_at} \
                             (faults[{join}]), found {left_at}"
                        ),
                    ));
                }
            }
        }
        for &(replica, at, restart, i) in &crashes {
            if let Some((join, joined_at)) = joins.get(&replica) {
                if at <= *joined_at {
                    return Err(error(
                        format!("faults[{i}].at"),
                        format!(
                            "expected replica {replica} to crash after it joins at {joined_at} \
                             (faults[{join}]): before, there is nothing running to crash; found {at}"
                        ),
                    ));
                }
            }
            if let Some((leave, left_at)) = leaves.get(&replica) {
                if at >= *left_at {
                    return Err(error(
                        format!("faults[{i}].at"),
                        format!(
                            "expected replica {replica} to crash before it leaves at {left_at} \
                             (faults[{leave}]); found {at}"
                        ),
                    ));
                }
                if let Some(restart) = restart.filter(|r| r >= left_at) {
                    return Err(error(
                        format!("faults[{i}].restart"),
                        format!(
                            "expected replica {replica} to restart before it leaves at {left_at} \
                             (faults[{leave}]); found {restart}"
                        ),
                    ));
                }
            }
        }
        self.writes_by_running_replicas(&joins, &leaves, &crashes)?;
        // Crashes of one replica, and server outages, in time order: each must start after the
        // one before it ended (a crash of a crashed replica does nothing, and the earlier end
        // would cut the later one short).
        crashes.sort_by_key(|&(replica, at, _, i)| (replica, at, i));
        for pair in crashes.windows(2) {
            let ((replica, _, end, first), (next_replica, at, _, i)) = (pair[0], pair[1]);
            if replica == next_replica && end.is_none_or(|end| at <= end) {
                return Err(error(
                    format!("faults[{i}].at"),
                    overlap_message(&format!("replica {replica} to crash"), first, end, at),
                ));
            }
        }
        outages.sort_by_key(|&(at, _, i)| (at, i));
        for pair in outages.windows(2) {
            let ((_, end, first), (at, _, i)) = (pair[0], pair[1]);
            if end.is_none_or(|end| at <= end) {
                return Err(error(
                    format!("faults[{i}].at"),
                    overlap_message("the server to go down", first, end, at),
                ));
            }
        }
        Ok(())
    }

    /// Refuses an explicit write the simulator would drop: one after `duration`, or by a replica
    /// that is not running at its time (before it joins, while it is crashed, after it left).
    /// Writes at an instant come before faults at that instant, so a write at a join's time is
    /// still before the join, one at a crash's time still before the crash, one at a restart's
    /// time still during the crash and one at a leave's time still before the leave.
    fn writes_by_running_replicas(
        &self,
        joins: &BTreeMap<u32, (usize, SimDuration)>,
        leaves: &BTreeMap<u32, (usize, SimDuration)>,
        crashes: &[(u32, SimDuration, Option<SimDuration>, usize)],
    ) -> Result<(), ScenarioError> {
        let duration = self.duration;
        for (i, op) in self.workload.ops.iter().enumerate() {
            let path = format!("workload.ops[{i}].at");
            let (at, replica) = (op.at, op.replica);
            if at > duration {
                return Err(error(
                    path,
                    format!(
                        "expected a time within duration ({duration}): writes stop when the \
                         settle period starts; found {at}"
                    ),
                ));
            }
            let not_running = |why: String| {
                error(
                    path.clone(),
                    format!(
                        "expected a time when replica {replica} runs; at {at} it {why}, and the \
                         write would be dropped"
                    ),
                )
            };
            if let Some((join, joined_at)) = joins.get(&replica) {
                if at <= *joined_at {
                    return Err(not_running(format!(
                        "has not joined yet (it joins at {joined_at}, faults[{join}])"
                    )));
                }
            }
            if let Some((leave, left_at)) = leaves.get(&replica) {
                if at > *left_at {
                    return Err(not_running(format!(
                        "has left (at {left_at}, faults[{leave}])"
                    )));
                }
            }
            if let Some((_, crashed_at, restart, crash)) = crashes
                .iter()
                .find(|c| c.0 == replica && at > c.1 && c.2.is_none_or(|restart| at <= restart))
            {
                return Err(not_running(match restart {
                    Some(restart) => format!(
                        "is crashed (from {crashed_at} until it restarts at {restart}, \
                         faults[{crash}])"
                    ),
                    None => format!("is crashed (from {crashed_at} for good, faults[{crash}])"),
                }));
            }
        }
        Ok(())
    }

    /// The entries one replica's state may come to hold: a grid's cells, the dictionary keys
    /// that can be written (at most `workload.keys`, at most about the updates planned: twice
    /// the expected count plus 64 leaves the Poisson draw of generated writes no real chance to
    /// exceed it, and never more than `bounds.updates-max`), or a list's elements (every insert,
    /// deleted or not: at most about the updates planned).
    pub fn state_entries_max(&self) -> u64 {
        let written = || {
            self.planned_updates()
                .saturating_mul(2)
                .saturating_add(64)
                .min(self.bounds.updates_max)
        };
        match &self.crdt {
            CrdtSpec::LwwGrid(grid) => u64::from(grid.rows) * u64::from(grid.cols),
            CrdtSpec::LwwDict(_) => u64::from(self.workload.keys).min(written()),
            CrdtSpec::Rga => written(),
        }
    }

    /// What one event of this scenario may cost, in cell visits ([`RUN_WORK_MAX`]).
    pub fn event_work_max(&self) -> u64 {
        let entries = self.state_entries_max();
        let entry_work = match &self.crdt {
            CrdtSpec::LwwGrid(_) => 1,
            CrdtSpec::LwwDict(_) => DICT_KEY_WORK,
            CrdtSpec::Rga => LIST_ELEMENT_WORK,
        } * if entries > CACHED_ENTRIES_MAX { 4 } else { 1 };
        let state = entries.saturating_mul(entry_work);
        let vectors = matches!(
            self.protocol.kind,
            ProtocolKind::ReliableCausal | ProtocolKind::DeltaSync
        );
        let replicas = if vectors {
            u64::from(self.replicas).saturating_mul(VECTOR_REPLICA_WORK)
        } else {
            0
        };
        EVENT_WORK.saturating_add(state).saturating_add(replicas)
    }

    /// Refuses a scenario whose run could exceed the time and memory a scenario file is promised
    /// (docs/robustness.md: within 60 s and 2 GiB on the project's 2-core machine): bounds above
    /// their defaults, which hold memory in proportion (messages and bytes in flight, updates,
    /// kept trace events and update records), and `bounds.events-max` times the work of one
    /// event above [`RUN_WORK_MAX`]. The CLI checks this for every scenario file after
    /// [`Scenario::validate`]; code that builds a scenario (a benchmark, `Verify` with a user's
    /// type, whose costs converge cannot know) may raise the bounds on purpose, so `validate`
    /// does not.
    pub fn validate_budget(&self) -> Result<(), ScenarioError> {
        let defaults = crate::scenario::Bounds::default();
        let bounds = &self.bounds;
        for (key, found, default) in [
            (
                "bounds.in-flight-max",
                bounds.in_flight_max,
                defaults.in_flight_max,
            ),
            (
                "bounds.in-flight-bytes-max",
                bounds.in_flight_bytes_max,
                defaults.in_flight_bytes_max,
            ),
            (
                "bounds.updates-max",
                bounds.updates_max,
                defaults.updates_max,
            ),
            (
                "bounds.trace-events-kept-max",
                bounds.trace_events_kept_max,
                defaults.trace_events_kept_max,
            ),
            (
                "bounds.update-records-kept-max",
                bounds.update_records_kept_max,
                defaults.update_records_kept_max,
            ),
            ("bounds.events-max", bounds.events_max, defaults.events_max),
        ] {
            if found > default {
                return Err(error(
                    key,
                    format!(
                        "expected at most {default}, the default, in a scenario file (a run \
                         within the bounds' defaults fits in 2 GiB and a minute); found {found}"
                    ),
                ));
            }
        }
        let event_work = self.event_work_max();
        let work = bounds.events_max.saturating_mul(event_work);
        if work > RUN_WORK_MAX {
            let state = match &self.crdt {
                CrdtSpec::LwwGrid(_) => format!("a grid of {} cells", self.state_entries_max()),
                CrdtSpec::LwwDict(_) => {
                    format!("a dictionary of up to {} keys", self.state_entries_max())
                }
                CrdtSpec::Rga => {
                    format!("a list of up to {} elements", self.state_entries_max())
                }
            };
            return Err(error(
                "bounds.events-max",
                format!(
                    "{} events, each of which may merge, compare or render {state} ({event_work} \
                     units of work an event), make {work} units; the cap is {RUN_WORK_MAX} \
                     (RUN_WORK_MAX): lower bounds.events-max to {} or make the state smaller",
                    bounds.events_max,
                    RUN_WORK_MAX / event_work
                ),
            ));
        }
        Ok(())
    }

    /// The updates the workload plans to issue: the explicit writes, plus the expected number of
    /// generated ones (rate x writers x time they write), at most `bounds.updates-max`. An
    /// estimate for the caps, not a promise: generated writes are a Poisson process.
    pub fn planned_updates(&self) -> u64 {
        let workload = &self.workload;
        let generated = if self.script.is_some() {
            0.0
        } else {
            let writers = workload
                .writers
                .as_ref()
                .map_or(self.replicas as usize, Vec::len) as f64;
            let stop = workload.stop.unwrap_or(self.duration).min(self.duration);
            workload.rate * writers * stop.us as f64 / 1e6
        };
        // A float beyond the range of u64 saturates when cast, which is what is wanted here.
        (generated.ceil() as u64)
            .saturating_add(workload.ops.len() as u64)
            .min(self.bounds.updates_max)
    }

    /// Every duration the scenario holds, with its key path, for the cap on durations.
    fn durations(&self) -> Vec<(String, SimDuration)> {
        let mut all = vec![
            ("duration".to_string(), self.duration),
            ("settle".to_string(), self.settle),
            ("protocol.interval".to_string(), self.protocol.interval),
            (
                "protocol.retransmit-timeout".to_string(),
                self.protocol.retransmit_timeout,
            ),
            ("network.latency-min".to_string(), self.network.latency_min),
            ("network.latency-max".to_string(), self.network.latency_max),
            (
                "network.reconnect-after".to_string(),
                self.network.reconnect_after,
            ),
        ];
        if let Some(interval) = self.protocol.anti_entropy {
            all.push(("protocol.anti-entropy".to_string(), interval));
        }
        all.extend(latency_durations("network.latency", &self.network.latency));
        for (i, link) in self.network.links.iter().enumerate() {
            if let Some(l) = &link.latency {
                all.extend(latency_durations(&format!("network.links[{i}].latency"), l));
            }
        }
        if let Some(stop) = self.workload.stop {
            all.push(("workload.stop".to_string(), stop));
        }
        // Explicit writes and scripted fates can number a million: their key paths are only
        // written out for the first one above the cap.
        if let Some((i, op)) =
            (self.workload.ops.iter().enumerate()).find(|(_, op)| op.at > VIRTUAL_TIME_MAX)
        {
            all.push((format!("workload.ops[{i}].at"), op.at));
        }
        for (i, fault) in self.faults.iter().enumerate() {
            let path = |key: &str| format!("faults[{i}].{key}");
            match fault {
                FaultSpec::Partition { at, heal, .. }
                | FaultSpec::Isolate { at, heal, .. }
                | FaultSpec::Bridge { at, heal, .. } => {
                    all.push((path("at"), *at));
                    all.extend(heal.map(|h| (path("heal"), h)));
                }
                FaultSpec::Crash { at, restart, .. } => {
                    all.push((path("at"), *at));
                    all.extend(restart.map(|r| (path("restart"), r)));
                }
                FaultSpec::Join { at, .. } | FaultSpec::Leave { at, .. } => {
                    all.push((path("at"), *at));
                }
                FaultSpec::ServerOutage { at, until } => {
                    all.push((path("at"), *at));
                    all.push((path("until"), *until));
                }
                FaultSpec::ConnectionDrop { at, reconnect, .. } => {
                    all.push((path("at"), *at));
                    all.extend(reconnect.map(|r| (path("reconnect"), r)));
                }
                FaultSpec::ClockSkew { .. } => {}
            }
        }
        if let Some(script) = &self.script {
            all.push(("script.latency".to_string(), script.latency));
            let too_long = |d: &SimDuration| *d > VIRTUAL_TIME_MAX;
            let first_too_long = script
                .fates
                .iter()
                .enumerate()
                .find_map(|(i, fate)| match &fate.fate {
                    Fate::Deliver { after } if too_long(after) => {
                        Some((format!("script.fates[{i}].fate.after"), *after))
                    }
                    Fate::Duplicate { after, .. } if too_long(after) => {
                        Some((format!("script.fates[{i}].fate.after"), *after))
                    }
                    Fate::Duplicate { again, .. } if too_long(again) => {
                        Some((format!("script.fates[{i}].fate.again"), *again))
                    }
                    _ => None,
                });
            all.extend(first_too_long);
        }
        if let Some(by) = self.expect.converged_by {
            all.push(("expect.converged-by".to_string(), by));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{LinkSpec, Script, ScriptedFate, SwarmSpec, TimedOp};
    use converge_crdt::LwwGridConfig;

    /// Validates a changed default scenario and returns the error, which must name `key` and,
    /// when given, the cap.
    fn refused(change: impl FnOnce(&mut Scenario), key: &str, cap: Option<&str>) -> String {
        let mut scenario = Scenario::default();
        change(&mut scenario);
        let error = scenario
            .validate()
            .expect_err("an absurd scenario is refused");
        assert_eq!(error.path, key, "{error}");
        if let Some(cap) = cap {
            assert!(error.message.contains(cap), "names the cap {cap}: {error}");
        }
        error.to_string()
    }

    #[test]
    fn the_default_scenario_is_valid() {
        Scenario::default().validate().unwrap();
    }

    #[test]
    fn a_vast_dictionary_on_many_nodes_is_refused() {
        refused(
            |s| {
                s.crdt = CrdtSpec::LwwDict(Default::default());
                s.replicas = 1_000;
                s.workload.keys = u32::MAX;
                s.workload.rate = 1_000.0;
            },
            "workload.keys",
            Some("NODE_KEYS_MAX"),
        );
    }

    #[test]
    fn a_long_list_on_many_nodes_is_refused() {
        let error = refused(
            |s| {
                s.crdt = CrdtSpec::Rga;
                s.replicas = 1_000;
                s.workload.rate = 1_000.0;
            },
            "bounds.updates-max",
            Some("NODE_LIST_ELEMENTS_MAX"),
        );
        assert!(error.contains("list elements"), "{error}");
    }

    #[test]
    fn a_list_counts_its_elements_against_the_budget() {
        // 3 writers at 2 a second for 10 s: about 60 inserts, planned twice over plus 64.
        let mut list = Scenario {
            crdt: CrdtSpec::Rga,
            ..Scenario::default()
        };
        assert_eq!(list.state_entries_max(), 184);
        assert_eq!(list.event_work_max(), EVENT_WORK + 184 * LIST_ELEMENT_WORK);
        let error = list
            .validate_budget()
            .expect_err("the default events-max is too many");
        assert!(
            error.message.contains("a list of up to 184 elements"),
            "{error}"
        );
        list.bounds.events_max = RUN_WORK_MAX / list.event_work_max();
        list.validate_budget().unwrap();
    }

    #[test]
    fn the_budget_refuses_raised_bounds_and_too_much_work() {
        Scenario::default().validate_budget().unwrap();
        let mut raised = Scenario::default();
        raised.bounds.in_flight_bytes_max += 1;
        let error = raised
            .validate_budget()
            .expect_err("a raised bound is refused");
        assert_eq!(error.path, "bounds.in-flight-bytes-max", "{error}");
        let mut big = Scenario {
            crdt: CrdtSpec::LwwGrid(LwwGridConfig {
                rows: 256,
                cols: 256,
                ..Default::default()
            }),
            ..Scenario::default()
        };
        let error = big.validate_budget().expect_err("too much work is refused");
        assert_eq!(error.path, "bounds.events-max", "{error}");
        assert!(error.message.contains("RUN_WORK_MAX"), "{error}");
        big.bounds.events_max = RUN_WORK_MAX / big.event_work_max();
        big.validate_budget().unwrap();
        big.bounds.events_max += 1;
        big.validate_budget()
            .expect_err("one event more is refused");
    }

    #[test]
    fn absurd_replica_counts_are_refused() {
        refused(
            |s| s.replicas = 4_000_000_000,
            "replicas",
            Some("REPLICAS_MAX"),
        );
        refused(|s| s.replicas = 0, "replicas", None);
        // Ten thousand replicas are allowed, but not with a million writes between them.
        refused(
            |s| {
                s.replicas = 10_000;
                s.workload.rate = 1_000.0;
            },
            "replicas",
            Some("REPLICA_UPDATES_MAX"),
        );
    }

    #[test]
    fn huge_grids_are_refused() {
        let grid = |rows, cols| {
            CrdtSpec::LwwGrid(LwwGridConfig {
                rows,
                cols,
                ..LwwGridConfig::default()
            })
        };
        refused(
            |s| s.crdt = grid(100_000, 100_000),
            "crdt",
            Some("GRID_CELLS_MAX"),
        );
        refused(
            |s| s.crdt = grid(u32::MAX, u32::MAX),
            "crdt",
            Some("GRID_CELLS_MAX"),
        );
        refused(
            |s| {
                s.replicas = 1_000;
                s.crdt = grid(256, 256);
            },
            "crdt",
            Some("NODE_CELLS_MAX"),
        );
    }

    #[test]
    fn durations_of_years_are_refused_wherever_they_are() {
        let years = |n: u64| SimDuration::from_secs(n * 365 * 24 * 3_600);
        refused(
            |s| s.duration = years(100),
            "duration",
            Some("VIRTUAL_TIME_MAX"),
        );
        refused(
            |s| s.duration = SimDuration::from_us(u64::MAX),
            "duration",
            Some("VIRTUAL_TIME_MAX"),
        );
        refused(
            |s| s.protocol.interval = years(11),
            "protocol.interval",
            None,
        );
        refused(
            |s| s.protocol.retransmit_timeout = SimDuration::from_us(u64::MAX),
            "protocol.retransmit-timeout",
            Some("VIRTUAL_TIME_MAX"),
        );
        refused(
            |s| {
                s.network.latency_max = SimDuration::from_us(u64::MAX);
            },
            "network.latency-max",
            None,
        );
        refused(
            |s| s.network.latency = Latency::Constant { value: years(20) },
            "network.latency.value",
            None,
        );
        refused(
            |s| {
                s.faults.push(FaultSpec::Join {
                    at: years(11),
                    replica: 1,
                })
            },
            "faults[0].at",
            None,
        );
        refused(
            |s| {
                s.workload.ops = vec![
                    TimedOp {
                        at: SimDuration::from_secs(1),
                        replica: 0,
                        key: 0,
                        value: Some(1),
                        ..Default::default()
                    };
                    3
                ];
                s.workload.ops[2].at = years(11);
            },
            "workload.ops[2].at",
            None,
        );
        refused(
            |s| {
                s.workload.ops = vec![TimedOp {
                    at: SimDuration::from_secs(1),
                    value: Some(1),
                    intent: Some(serde_json::json!({ "kind": "put", "key": 0, "value": 1 })),
                    ..Default::default()
                }];
            },
            "workload.ops[0].intent",
            None,
        );
        refused(
            |s| {
                s.script = Some(Script {
                    fates: vec![ScriptedFate {
                        message: 0,
                        fate: Fate::Duplicate {
                            after: SimDuration::from_ms(1),
                            again: years(11),
                        },
                    }],
                    ..Script::default()
                })
            },
            "script.fates[0].fate.again",
            None,
        );
    }

    #[test]
    fn absurd_rates_are_refused() {
        refused(|s| s.workload.rate = 1e9, "workload.rate", Some("RATE_MAX"));
        refused(|s| s.workload.rate = f64::NAN, "workload.rate", None);
        refused(|s| s.workload.rate = f64::INFINITY, "workload.rate", None);
        refused(|s| s.workload.rate = -1.0, "workload.rate", None);
    }

    #[test]
    fn huge_lists_are_refused() {
        let op = TimedOp {
            at: SimDuration::from_secs(1),
            replica: 0,
            key: 0,
            value: Some(1),
            ..Default::default()
        };
        refused(
            |s| {
                s.bounds.updates_max = u64::MAX;
                s.workload.ops = vec![op.clone(); OPS_MAX + 1];
            },
            "workload.ops",
            Some("OPS_MAX"),
        );
        refused(
            |s| {
                s.bounds.updates_max = 10;
                s.workload.ops = vec![op.clone(); 11];
            },
            "workload.ops",
            Some("bounds.updates-max"),
        );
        refused(
            |s| s.network.links = vec![LinkSpec::default(); LINKS_MAX + 1],
            "network.links",
            Some("LINKS_MAX"),
        );
        let join = FaultSpec::Join {
            at: SimDuration::from_secs(1),
            replica: 1,
        };
        refused(
            |s| s.faults = vec![join; FAULTS_MAX + 1],
            "faults",
            Some("FAULTS_MAX"),
        );
        refused(
            |s| s.workload.writers = Some(vec![0; 4]),
            "workload.writers",
            None,
        );
        refused(
            |s| {
                s.script = Some(Script {
                    coins: vec![true; SCRIPT_ENTRIES_MAX + 1],
                    ..Script::default()
                })
            },
            "script.coins",
            Some("SCRIPT_ENTRIES_MAX"),
        );
        refused(
            |s| {
                s.swarm = Some(SwarmSpec {
                    faults: 1_000_000,
                    ..SwarmSpec::default()
                })
            },
            "swarm.faults",
            Some("SWARM_FAULTS_MAX"),
        );
        refused(
            |s| s.name = "x".repeat(NAME_CHARS_MAX + 1),
            "name",
            Some("NAME_CHARS_MAX"),
        );
    }

    #[test]
    fn partition_groups_list_each_node_at_most_once() {
        refused(
            |s| {
                s.faults.push(FaultSpec::Partition {
                    at: SimDuration::from_secs(1),
                    heal: None,
                    groups: vec![vec![0; 1_000_000]],
                    direction: Default::default(),
                })
            },
            "faults[0].groups",
            None,
        );
    }

    fn secs(s: u64) -> SimDuration {
        SimDuration::from_secs(s)
    }

    fn crash(at: u64, replica: u32, restart: Option<u64>) -> FaultSpec {
        FaultSpec::Crash {
            at: secs(at),
            replica,
            restart: restart.map(secs),
            state: Default::default(),
        }
    }

    fn partition(at: u64, heal: Option<u64>, groups: Vec<Vec<u32>>) -> FaultSpec {
        FaultSpec::Partition {
            at: secs(at),
            heal: heal.map(secs),
            groups,
            direction: Default::default(),
        }
    }

    /// Validates the default scenario with `faults` and returns the refusal, which must name
    /// `key` and say `words`.
    fn faults_refused(faults: Vec<FaultSpec>, key: &str, words: &str) {
        let message = refused(|s| s.faults = faults, key, None);
        assert!(message.contains(words), "says {words:?}: {message}");
    }

    fn faults_accepted(faults: Vec<FaultSpec>) {
        let scenario = Scenario {
            faults,
            ..Scenario::default()
        };
        scenario
            .validate()
            .expect("a sensible fault plan is accepted");
    }

    #[test]
    fn times_within_one_fault_are_ordered() {
        // Regression (probe of issue 17): a partition that heals before it starts was accepted
        // and ran as a partition that never heals.
        faults_refused(
            vec![
                FaultSpec::Join {
                    at: secs(1),
                    replica: 1,
                },
                crash(2, 0, Some(3)),
                partition(5, Some(2), vec![vec![0]]),
            ],
            "faults[2].heal",
            "after at (5s), found 2s",
        );
        // Regression: a restart before its crash left the replica down for good.
        faults_refused(vec![crash(4, 1, Some(1))], "faults[0].restart", "after at");
        faults_refused(
            vec![FaultSpec::Isolate {
                at: secs(3),
                heal: Some(secs(3)),
                replica: 0,
            }],
            "faults[0].heal",
            "after at",
        );
        refused(
            |s| {
                s.protocol.topology = Topology::Relay;
                s.faults = vec![FaultSpec::ServerOutage {
                    at: secs(2),
                    until: secs(1),
                }];
            },
            "faults[0].until",
            None,
        );
        faults_refused(
            vec![crash(11, 1, None)],
            "faults[0].at",
            "within duration (10s)",
        );
        faults_accepted(vec![
            partition(2, Some(30), vec![vec![0]]),
            crash(3, 1, Some(4)),
        ]);
    }

    #[test]
    fn a_replica_lives_through_join_crashes_and_leave_in_order() {
        let join = |at, replica| FaultSpec::Join {
            at: secs(at),
            replica,
        };
        let leave = |at, replica| FaultSpec::Leave {
            at: secs(at),
            replica,
        };
        faults_refused(
            vec![join(5, 1), leave(3, 1)],
            "faults[1].at",
            "leave after it joins at 5s",
        );
        faults_refused(
            vec![leave(3, 1), join(5, 1)],
            "faults[0].at",
            "leave after it joins",
        );
        faults_refused(
            vec![join(5, 1), crash(2, 1, Some(6))],
            "faults[1].at",
            "crash after it joins",
        );
        faults_refused(
            vec![leave(5, 2), crash(6, 2, None)],
            "faults[1].at",
            "before it leaves",
        );
        faults_refused(
            vec![leave(5, 2), crash(4, 2, Some(7))],
            "faults[1].restart",
            "restart before it leaves",
        );
        faults_refused(
            vec![join(1, 1), join(2, 1)],
            "faults[1].replica",
            "faults[0] is already",
        );
        faults_refused(
            vec![leave(1, 1), leave(2, 1)],
            "faults[1].replica",
            "one leave",
        );
        faults_refused(
            vec![
                FaultSpec::ClockSkew {
                    replica: 0,
                    offset_us: 5,
                    drift_ppm: 0,
                },
                FaultSpec::ClockSkew {
                    replica: 0,
                    offset_us: 9,
                    drift_ppm: 0,
                },
            ],
            "faults[1].replica",
            "one clock skew",
        );
        faults_accepted(vec![
            join(1, 1),
            crash(2, 1, Some(3)),
            crash(4, 1, None),
            leave(9, 2),
        ]);
    }

    #[test]
    fn explicit_writes_come_from_running_replicas_within_the_run() {
        let write = |at_ms: u64, replica: u32| TimedOp {
            at: SimDuration::from_ms(at_ms),
            replica,
            key: 0,
            value: Some(1),
            ..Default::default()
        };
        let with = |faults: Vec<FaultSpec>, ops: Vec<TimedOp>| {
            move |s: &mut Scenario| {
                s.faults = faults;
                s.workload.ops = ops;
            }
        };
        let join = FaultSpec::Join {
            at: secs(5),
            replica: 1,
        };
        let leave = FaultSpec::Leave {
            at: secs(6),
            replica: 1,
        };
        // Regression (probe of issue 17): each of these writes was accepted and silently dropped.
        for (ops, words) in [
            (
                vec![write(5_000, 1)],
                "has not joined yet (it joins at 5s, faults[0])",
            ),
            (vec![write(6_001, 1)], "has left (at 6s, faults[1])"),
            (
                vec![write(5_500, 1), write(3_000, 0)],
                "is crashed (from 2s until it restarts at 3s, faults[2])",
            ),
            (vec![write(10_001, 0)], "within duration (10s)"),
        ] {
            let key = format!("workload.ops[{}].at", ops.len() - 1);
            let message = refused(
                with(vec![join.clone(), leave.clone(), crash(2, 0, Some(3))], ops),
                &key,
                None,
            );
            assert!(message.contains(words), "{words}: {message}");
        }
        // At a join, a restart or a leave's instant, a write comes before the fault.
        let mut fine = Scenario::default();
        with(
            vec![join.clone(), leave.clone(), crash(2, 0, Some(3))],
            vec![
                write(5_001, 1),
                write(6_000, 1),
                write(2_000, 0),
                write(3_001, 0),
                write(10_000, 2),
            ],
        )(&mut fine);
        fine.validate().expect("writes while running are accepted");
    }

    #[test]
    fn crashes_of_one_replica_and_server_outages_do_not_overlap() {
        // Listed out of time order: the later-starting crash is the one named.
        faults_refused(
            vec![crash(3, 0, Some(4)), crash(1, 0, Some(5))],
            "faults[0].at",
            "overlaps it",
        );
        faults_refused(
            vec![crash(1, 0, None), crash(6, 0, Some(8))],
            "faults[1].at",
            "never does",
        );
        faults_refused(
            vec![crash(1, 0, Some(3)), crash(3, 0, Some(8))],
            "faults[1].at",
            "ends at 3s",
        );
        faults_accepted(vec![
            crash(1, 0, Some(3)),
            crash(2, 1, Some(8)),
            crash(4, 0, None),
        ]);
        let outage = |at, until| FaultSpec::ServerOutage {
            at: secs(at),
            until: secs(until),
        };
        refused(
            |s| {
                s.protocol.topology = Topology::Relay;
                s.faults = vec![outage(1, 4), outage(6, 7), outage(2, 3)];
            },
            "faults[2].at",
            None,
        );
    }

    #[test]
    fn groups_list_each_node_once_and_a_bridge_stands_outside_them() {
        faults_refused(
            vec![partition(1, Some(2), vec![vec![0, 1], vec![1]])],
            "faults[0].groups[1][0]",
            "already groups[0][1]",
        );
        faults_refused(
            vec![FaultSpec::Bridge {
                at: secs(1),
                heal: None,
                groups: vec![vec![0], vec![1]],
                bridge: 1,
            }],
            "faults[0].bridge",
            "groups[1][0]",
        );
        refused(
            |s| s.workload.writers = Some(vec![0, 2, 0]),
            "workload.writers[2]",
            None,
        );
    }

    #[test]
    fn a_name_with_control_characters_is_refused() {
        // Regression (probe of issue 17): a name holding a terminal escape reached the terminal.
        refused(|s| s.name = "x\u{1b}[2Jy".to_string(), "name", None);
    }

    #[test]
    fn a_raised_bound_is_the_users_choice_but_the_plan_is_still_capped() {
        // Bounds are the caps a run lives within; raising them is allowed (benchmarks do), but
        // the planned work is still held to the caps on its shape.
        let mut scenario = Scenario::default();
        scenario.bounds.events_max = u64::MAX;
        scenario.bounds.updates_max = u64::MAX;
        scenario.validate().unwrap();
        assert_eq!(scenario.planned_updates(), 60);
    }
}
