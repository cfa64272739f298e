//! The convergence oracles: what "converges" means, checked on a run.
//!
//! - [`StrongConvergence`] (safety) watches every event: two live replicas that have delivered the
//!   same set of updates must hold equal views.
//! - [`ConvergenceTimeline`] watches every event and records how many distinct views the live
//!   replicas hold, which gives the chart in reports and the time at which the run converged.
//! - [`eventual_convergence`] (liveness) judges the end of the settle period: every live replica
//!   holds the same view and every update issued by a replica that stayed correct.
//! - [`intent`] judges the converged state against the sequential specification and reports
//!   causally later writes that lost to earlier ones.
//!
//! Oracles only read what the simulator shows them; none of them can change a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use converge_crdt::{FixedCoin, OpCrdt, ReplicaId};
use converge_netsim::{
    Durability, FaultSpec, Observer, Outcome, Replica, Status, TraceEvent, UpdateRecord, World,
};
use serde::Serialize;

/// Which oracle a violation breaks.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Oracle {
    StrongConvergence,
    EventualConvergence,
    Intent,
}

/// One replica's observable state, rendered for people and for JSON.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ReplicaSnapshot {
    pub replica: ReplicaId,
    /// How many updates it has delivered.
    pub delivered: u32,
    pub view: serde_json::Value,
}

/// A broken oracle, with where and when it broke and the states that show it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Violation {
    pub oracle: Oracle,
    /// The event after which it was seen (`None` for end-of-run judgements).
    pub event_index: Option<u64>,
    pub at_us: u64,
    pub replicas: Vec<ReplicaId>,
    /// One sentence a person can read.
    pub detail: String,
    /// The differing replicas' views, side by side.
    pub states: Vec<ReplicaSnapshot>,
}

/// How many violations of one oracle are kept; the first one is what the verdict names.
pub const VIOLATIONS_KEPT_MAX: usize = 5;

fn is_live(status: Status) -> bool {
    status == Status::Up
}

pub fn snapshot<C: OpCrdt>(replica: &Replica<C>) -> ReplicaSnapshot {
    ReplicaSnapshot {
        replica: replica.id,
        delivered: replica.delivered.len(),
        view: serde_json::to_value(replica.crdt.view()).unwrap_or(serde_json::Value::Null),
    }
}

/// Strong convergence, checked after every event.
pub struct StrongConvergence {
    pub violations: Vec<Violation>,
    /// Violations seen in all, kept or not.
    pub count: u64,
}

impl StrongConvergence {
    pub fn new() -> Self {
        StrongConvergence {
            violations: Vec::new(),
            count: 0,
        }
    }
}

impl Default for StrongConvergence {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: OpCrdt> Observer<C> for StrongConvergence {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        for &touched in world.touched {
            let Some(mine) = world.replicas.get(touched as usize) else {
                continue;
            };
            if !is_live(mine.status) {
                continue;
            }
            for other in world.replicas {
                if other.id == mine.id
                    || !is_live(other.status)
                    || !mine.delivered.same_as(&other.delivered)
                {
                    continue;
                }
                if mine.crdt.view() != other.crdt.view() {
                    self.count += 1;
                    if self.violations.len() < VIOLATIONS_KEPT_MAX {
                        self.violations.push(Violation {
                            oracle: Oracle::StrongConvergence,
                            event_index: Some(event.index),
                            at_us: event.at_us,
                            replicas: vec![mine.id.min(other.id), mine.id.max(other.id)],
                            detail: format!(
                                "replicas {} and {} delivered the same {} updates but hold different states",
                                mine.id.min(other.id),
                                mine.id.max(other.id),
                                mine.delivered.len()
                            ),
                            states: vec![snapshot(mine), snapshot(other)],
                        });
                    }
                }
            }
        }
    }
}

/// Records the number of distinct views among live replicas whenever it changes, and when the live
/// replicas last came to agree (equal views and equal delivered sets).
pub struct ConvergenceTimeline {
    /// `(at_us, distinct views)` at every change.
    pub points: Vec<(u64, u32)>,
    /// When the live replicas last came to agree; `None` while they disagree.
    pub agreed_since_us: Option<u64>,
    /// Points kept at most; later changes only update `agreed_since_us`.
    pub points_max: usize,
    views: Vec<Option<serde_json::Value>>,
}

impl ConvergenceTimeline {
    pub fn new(points_max: usize) -> Self {
        ConvergenceTimeline {
            points: Vec::new(),
            agreed_since_us: None,
            points_max,
            views: Vec::new(),
        }
    }
}

impl<C: OpCrdt> Observer<C> for ConvergenceTimeline {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        if self.views.len() != world.replicas.len() {
            self.views = world.replicas.iter().map(|r| live_view(r)).collect();
        } else if world.touched.is_empty() && !self.points.is_empty() {
            return;
        } else {
            for &touched in world.touched {
                if let Some(replica) = world.replicas.get(touched as usize) {
                    self.views[touched as usize] = live_view(replica);
                }
            }
            // Status changes (crash, leave, join) touch no state but change who is live.
            for (index, replica) in world.replicas.iter().enumerate() {
                if is_live(replica.status) != self.views[index].is_some() {
                    self.views[index] = live_view(replica);
                }
            }
        }
        let mut distinct: Vec<&serde_json::Value> = Vec::new();
        for view in self.views.iter().flatten() {
            if !distinct.contains(&view) {
                distinct.push(view);
            }
        }
        let distinct_count = distinct.len() as u32;
        if self.points.last().map(|p| p.1) != Some(distinct_count)
            && self.points.len() < self.points_max
        {
            self.points.push((event.at_us, distinct_count));
        }
        let mut live = world.replicas.iter().filter(|r| is_live(r.status));
        let agreed = distinct_count <= 1
            && match live.next() {
                None => true,
                Some(first) => live.all(|r| r.delivered.same_as(&first.delivered)),
            };
        match (agreed, self.agreed_since_us) {
            (true, None) => self.agreed_since_us = Some(event.at_us),
            (false, Some(_)) => self.agreed_since_us = None,
            _ => {}
        }
    }
}

fn live_view<C: OpCrdt>(replica: &Replica<C>) -> Option<serde_json::Value> {
    is_live(replica.status).then(|| serde_json::to_value(replica.crdt.view()).unwrap_or_default())
}

/// Fans one event out to several observers.
pub struct Observers<'a, C: OpCrdt>(pub Vec<&'a mut dyn Observer<C>>);

impl<C: OpCrdt> Observer<C> for Observers<'_, C> {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        for observer in &mut self.0 {
            observer.on_event(event, world);
        }
    }

    fn interrupted(&self) -> bool {
        self.0.iter().any(|observer| observer.interrupted())
    }
}

/// Watches nothing, and asks the run to stop once `flag` is raised: how a Ctrl-C handler (which
/// only sets a flag) reaches a run in progress.
pub struct StopFlag<'a>(pub &'a AtomicBool);

impl<C: OpCrdt> Observer<C> for StopFlag<'_> {
    fn on_event(&mut self, _event: &TraceEvent, _world: &World<'_, C>) {}

    fn interrupted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The updates a replica should hold at the end: every update whose origin stayed correct (is up at
/// the end and did not lose it in a volatile crash before passing it on), and every update anyone
/// live has delivered.
fn required_updates<C: OpCrdt>(outcome: &Outcome<C>) -> Vec<u32> {
    let correct: Vec<bool> = outcome.replicas.iter().map(|r| is_live(r.status)).collect();
    let volatile_crashes: Vec<(ReplicaId, u64)> = outcome
        .faults
        .iter()
        .filter_map(|f| match f {
            FaultSpec::Crash {
                at,
                replica,
                state: Durability::Volatile,
                ..
            } => Some((*replica, at.us)),
            _ => None,
        })
        .collect();
    let lost_in_crash = |u: &UpdateRecord<C>| {
        volatile_crashes
            .iter()
            .any(|(replica, at_us)| *replica == u.id.origin && *at_us >= u.at_us)
    };
    outcome
        .updates
        .iter()
        .filter(|u| {
            (correct.get(u.id.origin as usize).copied().unwrap_or(false) && !lost_in_crash(u))
                || outcome
                    .replicas
                    .iter()
                    .any(|r| is_live(r.status) && r.delivered.contains(u.index))
        })
        .map(|u| u.index)
        .collect()
}

/// Eventual convergence at the end of the settle period.
pub fn eventual_convergence<C: OpCrdt>(outcome: &Outcome<C>) -> Option<Violation> {
    let live: Vec<&Replica<C>> = outcome
        .replicas
        .iter()
        .filter(|r| is_live(r.status))
        .collect();
    let required = required_updates(outcome);
    let mut missing: BTreeMap<ReplicaId, usize> = BTreeMap::new();
    for replica in &live {
        let lacking = required
            .iter()
            .filter(|u| !replica.delivered.contains(**u))
            .count();
        if lacking > 0 {
            missing.insert(replica.id, lacking);
        }
    }
    let first_view = live.first().map(|r| r.crdt.view());
    let differing: Vec<&&Replica<C>> = live
        .iter()
        .filter(|r| Some(r.crdt.view()) != first_view)
        .collect();
    if missing.is_empty() && differing.is_empty() {
        return None;
    }
    let mut shown: Vec<ReplicaId> = Vec::new();
    if let Some(first) = live.first() {
        shown.push(first.id);
    }
    shown.extend(differing.iter().map(|r| r.id));
    shown.extend(missing.keys().copied());
    shown.sort_unstable();
    shown.dedup();
    let detail = if missing.is_empty() {
        format!(
            "after settling, {} of {} live replicas hold a different state",
            differing.len(),
            live.len()
        )
    } else {
        let lacks: Vec<String> = missing
            .iter()
            .map(|(r, n)| format!("replica {r} lacks {n}"))
            .collect();
        format!(
            "after settling, live replicas do not hold every update ({} required): {}",
            required.len(),
            lacks.join(", ")
        )
    };
    Some(Violation {
        oracle: Oracle::EventualConvergence,
        event_index: None,
        at_us: outcome.end_us,
        replicas: shown.clone(),
        detail,
        states: shown
            .iter()
            .map(|id| snapshot(&outcome.replicas[*id as usize]))
            .collect(),
    })
}

/// The intent oracle: causally later writes that lost, and the converged view against the
/// sequential specification (every update applied in stamp order to a fresh replica).
pub fn intent<C: OpCrdt>(outcome: &Outcome<C>, make: &dyn Fn(ReplicaId) -> C) -> Vec<Violation> {
    let mut violations = Vec::new();
    let stale: Vec<&UpdateRecord<C>> = outcome
        .updates
        .iter()
        .filter(|u| u.stale_against_time.is_some())
        .collect();
    if let Some(first) = stale.first() {
        violations.push(Violation {
            oracle: Oracle::Intent,
            event_index: None,
            at_us: first.at_us,
            replicas: vec![first.id.origin],
            detail: format!(
                "{} causally later writes lost to earlier ones; the first: replica {} wrote key {} at {:.3} ms \
                 with stamp time {} after seeing stamp time {} on that key",
                stale.len(),
                first.id.origin,
                first.intent.key(),
                first.at_us as f64 / 1e3,
                first.stamp.time,
                first.stale_against_time.unwrap_or_default()
            ),
            states: Vec::new(),
        });
    }
    let live: Vec<&Replica<C>> = outcome
        .replicas
        .iter()
        .filter(|r| is_live(r.status))
        .collect();
    let Some(reference) = live.first() else {
        return violations;
    };
    if reference.delivered.len() as usize != outcome.updates.len() {
        // Not every update reached this replica; the specification over all updates does not apply.
        return violations;
    }
    let mut ordered: Vec<&UpdateRecord<C>> = outcome.updates.iter().collect();
    ordered.sort_by_key(|u| (u.stamp, u.index));
    let mut sequential = make(reference.id);
    let mut coin = FixedCoin(false);
    for update in ordered {
        sequential.apply(&update.op, &mut coin);
    }
    if sequential.view() != reference.crdt.view() {
        violations.push(Violation {
            oracle: Oracle::Intent,
            event_index: None,
            at_us: outcome.end_us,
            replicas: vec![reference.id],
            detail: format!(
                "replica {} differs from the sequential specification (all {} updates applied in stamp order)",
                reference.id,
                outcome.updates.len()
            ),
            states: vec![
                snapshot(reference),
                ReplicaSnapshot {
                    replica: u32::MAX,
                    delivered: outcome.updates.len() as u32,
                    view: serde_json::to_value(sequential.view()).unwrap_or_default(),
                },
            ],
        });
    }
    violations
}
