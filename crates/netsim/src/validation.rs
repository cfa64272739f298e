//! Scenario validation: everything that deserializes but cannot run is refused here, with the key
//! path and what was expected, before the simulator starts.

use crate::scenario::{CrdtSpec, FaultSpec, Latency, ProtocolKind, Scenario, Topology};
use crate::time::SimDuration;

/// Replicas a scenario may ask for.
pub const REPLICAS_MAX: u32 = 10_000;
/// Cells of a grid.
pub const GRID_CELLS_MAX: u64 = 1_000_000;
/// Virtual time a run may cover (duration plus settle): ten years.
pub const VIRTUAL_TIME_MAX: SimDuration = SimDuration::from_secs(10 * 365 * 24 * 3_600);
/// Writes per second per replica.
pub const RATE_MAX: f64 = 1_000_000.0;

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

impl Scenario {
    /// Refuses what cannot run. `run` calls this first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.replicas == 0 {
            return Err(error("replicas", "expected at least one replica, found 0"));
        }
        if self.replicas > REPLICAS_MAX {
            return Err(error(
                "replicas",
                format!(
                    "expected at most {REPLICAS_MAX} replicas, found {}",
                    self.replicas
                ),
            ));
        }
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
                    format!("expected a grid of 1 to {GRID_CELLS_MAX} cells, found {cells}"),
                ));
            }
        }
        if self.duration.us.saturating_add(self.settle.us) > VIRTUAL_TIME_MAX.us {
            return Err(error(
                "duration",
                format!("expected duration + settle of at most {VIRTUAL_TIME_MAX}"),
            ));
        }
        let protocol = &self.protocol;
        if protocol.fanout == 0 {
            return Err(error("protocol.fanout", "expected at least 1"));
        }
        let periodic = matches!(
            protocol.kind,
            ProtocolKind::AntiEntropy | ProtocolKind::DeltaSync
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
                    "expected 0 to {RATE_MAX} writes per second, found {}",
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
        for (i, writer) in workload.writers.iter().flatten().enumerate() {
            replica(format!("workload.writers[{i}]"), *writer)?;
        }
        for (i, op) in workload.ops.iter().enumerate() {
            replica(format!("workload.ops[{i}].replica"), op.replica)?;
        }
        if workload.ops.len() as u64 > self.bounds.updates_max {
            return Err(error(
                "workload.ops",
                format!(
                    "expected at most {} explicit writes",
                    self.bounds.updates_max
                ),
            ));
        }
        for (i, fault) in self.faults.iter().enumerate() {
            let path = |key: &str| format!("faults[{i}].{key}");
            match fault {
                FaultSpec::Partition { groups, .. } | FaultSpec::Bridge { groups, .. } => {
                    if groups.is_empty() {
                        return Err(error(path("groups"), "expected at least one group"));
                    }
                    for (g, group) in groups.iter().enumerate() {
                        for (m, member) in group.iter().enumerate() {
                            if *member >= nodes {
                                return Err(error(
                                    path(&format!("groups[{g}][{m}]")),
                                    format!("expected a node below {nodes}, found {member}"),
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
                    }
                }
                FaultSpec::Isolate { replica: r, .. }
                | FaultSpec::Crash { replica: r, .. }
                | FaultSpec::Join { replica: r, .. }
                | FaultSpec::Leave { replica: r, .. }
                | FaultSpec::ClockSkew { replica: r, .. } => replica(path("replica"), *r)?,
                FaultSpec::ServerOutage { at, until } => {
                    if protocol.topology != Topology::Relay {
                        return Err(error(
                            path("kind"),
                            "a server outage needs topology = \"relay\"",
                        ));
                    }
                    if until < at {
                        return Err(error(path("until"), "expected until >= at"));
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
        if let Some(swarm) = &self.swarm {
            probability("swarm.drop-max", swarm.drop_max)?;
            probability("swarm.duplicate-max", swarm.duplicate_max)?;
            if swarm.faults > 1_000 {
                return Err(error("swarm.faults", "expected at most 1000 drawn faults"));
            }
        }
        Ok(())
    }
}
