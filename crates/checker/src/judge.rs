//! Runs a scenario with every oracle watching and turns what they saw into a [`RunReport`]: the
//! verdict, the evidence, and the counts that say what the run exercised.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;

use converge_crdt::{OpCrdt, ReplicaId};
use converge_netsim::{
    BuiltinCrdt, Coverage, CrdtSpec, CrdtVisitor, End, FaultSpec, MessageStats, Outcome, Replicas,
    Runner, Scenario, ScenarioError, ScenarioProtocol, Status, TraceEvent, Verdict,
};
use serde::Serialize;

use crate::clone_check::judging_probe;
use crate::liveness::{judge_liveness, Liveness, LivenessWatch};
use crate::oracles::{
    eventual_convergence, intent, snapshot, ConvergenceWatch, IntentWatch, ReplicaSnapshot,
    StopFlag, Violation,
};

/// Bumped whenever a field of [`RunReport`] changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Points of the distinct-states chart kept per run.
pub const TIMELINE_POINTS_MAX: usize = 2_000;

/// Trace events copied into a report for its diagrams and exports, by default
/// (`bounds.report-events-max` sets it per scenario).
pub const REPORT_TRACE_EVENTS_MAX: usize = converge_netsim::REPORT_EVENTS_MAX_DEFAULT as usize;

/// One replica at the end of the run.
#[derive(Clone, Debug, Serialize)]
pub struct FinalReplica {
    pub status: Status,
    #[serde(flatten)]
    pub snapshot: ReplicaSnapshot,
}

/// What the run exercised, so that a clean verdict can be weighed.
#[derive(Clone, Debug, Serialize)]
pub struct NonVacuity {
    #[serde(flatten)]
    pub coverage: Coverage,
    /// Late joiners (and restarted replicas) that ended holding every required update.
    pub late_joins_caught_up: u64,
    /// True when the run exercised no conflict at all: a clean verdict on it is not evidence.
    pub vacuous: bool,
}

/// The judged result of one run: everything reports and `--json` show.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub scenario: String,
    pub description: String,
    /// The protocol that ran: the scenario's built-in one, or a user's by its name.
    pub protocol: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub expected: Verdict,
    pub met_expectation: bool,
    /// Why the expectation was or was not met, in sentences.
    pub expectation_notes: Vec<String>,
    /// The trace hash as 16 hex digits.
    pub trace_hash: String,
    pub events: u64,
    pub end: End,
    pub end_ms: f64,
    /// When the live replicas last came to agree and stayed so; `None` if they never did.
    pub converged_at_ms: Option<f64>,
    /// When the live replicas last came to agree and stayed so, whatever the verdict: a run that
    /// diverged and then healed has it, though it has no `converged_at_ms`.
    #[serde(default)]
    pub agreed_at_ms: Option<f64>,
    /// When the settle period began (no writes and no faults from then on).
    #[serde(default)]
    pub settle_start_ms: f64,
    /// The drop and duplicate probabilities the network ran with: the scenario's, or in swarm
    /// mode the ones the seed drew.
    #[serde(default)]
    pub network_drop: f64,
    #[serde(default)]
    pub network_duplicate: f64,
    pub updates: u64,
    pub messages: MessageStats,
    pub coverage: NonVacuity,
    pub violations: Vec<Violation>,
    /// The oracles (or parts of one) that did not run, each with the reason in one sentence: a
    /// type with intents of its own and no sequential specification, a run too long for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracles_not_run: Vec<String>,
    /// Violations of strong convergence seen in all (only the first few are kept).
    pub strong_violations_total: u64,
    pub replicas: Vec<FinalReplica>,
    /// `(virtual ms, distinct states among live replicas)` at every change.
    pub timeline: Vec<(f64, u32)>,
    pub trace: Vec<TraceEvent>,
    pub trace_truncated: bool,
    /// The faults in force (scenario and swarm).
    pub faults: Vec<FaultSpec>,
    /// One command that reproduces this run.
    pub reproduce: String,
    /// The scenario exactly as run, so that `converge replay` and `converge shrink` can rerun it.
    pub scenario_spec: Scenario,
}

/// A run's outcome next to its report, for callers that want the replicas themselves.
pub struct Judged<C: OpCrdt> {
    pub outcome: Outcome<C>,
    pub report: RunReport,
}

/// Runs `scenario` with `seed`, every oracle on, and judges it. `make` builds each replica's empty
/// CRDT.
pub fn judge<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
) -> Result<Judged<C>, ScenarioError> {
    judge_until(scenario, seed, make, None)
}

/// [`judge`], stopping early once `stop` is raised (Ctrl-C): the run then ends with
/// [`End::Interrupted`] and the verdict concludes nothing ([`Verdict::BoundReached`]).
pub fn judge_until<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
    stop: Option<&AtomicBool>,
) -> Result<Judged<C>, ScenarioError> {
    judge_with(scenario, seed, &ScenarioProtocol, make, stop)
}

/// [`judge_until`] under `protocol`: a user's own ([`converge_netsim::UserProtocol`]) or the
/// scenario's ([`ScenarioProtocol`]).
pub fn judge_with<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    protocol: &dyn Runner<C>,
    make: &dyn Replicas<C>,
    stop: Option<&AtomicBool>,
) -> Result<Judged<C>, ScenarioError> {
    let never = AtomicBool::new(false);
    let mut observer = StopFlag {
        inner: (
            (
                (
                    ConvergenceWatch::new(TIMELINE_POINTS_MAX),
                    IntentWatch::new(make, scenario.clock),
                ),
                LivenessWatch::new(),
            ),
            // After the oracles, so that they judge each event before the probe looks at it.
            judging_probe::<C>(),
        ),
        flag: stop.unwrap_or(&never),
    };
    let outcome = protocol.run(scenario, seed, make, &mut observer)?;
    let (((convergence, intent_watch), liveness_watch), _) = observer.inner;
    let ConvergenceWatch {
        strong, timeline, ..
    } = convergence;
    let mut violations = Vec::new();
    if let End::Panicked {
        message,
        after_events,
    } = &outcome.end
    {
        // The run stopped half way: what it reached is not judged, only the panic is reported.
        violations.push(crate::oracles::panic_violation(
            &outcome,
            message,
            *after_events,
        ));
    }
    violations.extend(strong.violations.iter().cloned());
    let finished = !matches!(outcome.end, End::Panicked { .. });
    let eventual = if finished {
        eventual_convergence(&outcome)
    } else {
        None
    };
    let liveness = if finished && outcome.end == End::Completed {
        judge_liveness(scenario, &outcome, &liveness_watch, eventual.is_none())
    } else {
        None
    };
    violations.extend(eventual);
    violations.extend(liveness.as_ref().map(|l| liveness_violation(&outcome, l)));
    let oracles_not_run: Vec<String> = intent_watch.not_run(&outcome).into_iter().collect();
    let intent_violations = if finished {
        intent(&outcome, intent_watch)
    } else {
        Vec::new()
    };
    let verdict = if !finished {
        Verdict::Panicked
    } else if matches!(outcome.end, End::BoundReached { .. } | End::Interrupted) {
        Verdict::BoundReached
    } else if strong.count > 0 {
        Verdict::Diverges
    } else if let Some(liveness) = &liveness {
        match liveness {
            Liveness::SyncLoop { .. } => Verdict::SyncLoop,
            Liveness::Stalled { .. } => Verdict::Stalled,
        }
    } else if violations
        .iter()
        .any(|v| v.oracle == crate::oracles::Oracle::EventualConvergence)
    {
        Verdict::NotConverged
    } else if !intent_violations.is_empty() {
        Verdict::IntentViolated
    } else {
        Verdict::Converges
    };
    violations.extend(intent_violations);
    let converged_at_ms = match verdict {
        Verdict::Converges | Verdict::IntentViolated => {
            timeline.agreed_since_us.map(|us| us as f64 / 1e3)
        }
        _ => None,
    };
    let coverage = non_vacuity(&outcome);
    let report_events_max = usize::try_from(
        scenario
            .bounds
            .report_events_max
            .min(scenario.bounds.trace_events_kept_max),
    )
    .unwrap_or(usize::MAX);
    let (met_expectation, expectation_notes) =
        meets_expectation(scenario, verdict, converged_at_ms, &coverage);
    let report = RunReport {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        protocol: protocol.name(scenario),
        seed,
        verdict,
        expected: scenario.expect.verdict,
        met_expectation,
        expectation_notes,
        trace_hash: format!("{:016x}", outcome.trace_hash),
        events: outcome.events,
        end: outcome.end.clone(),
        end_ms: outcome.end_us as f64 / 1e3,
        converged_at_ms,
        agreed_at_ms: timeline.agreed_since_us.map(|us| us as f64 / 1e3),
        settle_start_ms: outcome.settle_start_us as f64 / 1e3,
        network_drop: outcome.network_drop,
        network_duplicate: outcome.network_duplicate,
        updates: outcome.updates_issued,
        messages: outcome.messages,
        coverage,
        violations,
        oracles_not_run,
        strong_violations_total: strong.count,
        replicas: outcome
            .replicas
            .iter()
            .map(|r| FinalReplica {
                status: r.status,
                snapshot: snapshot(r),
            })
            .collect(),
        timeline: timeline
            .points
            .iter()
            .map(|(us, n)| (*us as f64 / 1e3, *n))
            .collect(),
        trace: outcome
            .trace
            .iter()
            .take(report_events_max)
            .cloned()
            .collect(),
        trace_truncated: outcome.trace_truncated || outcome.trace.len() > report_events_max,
        faults: outcome.faults.clone(),
        reproduce: format!("converge run <scenario file> --seed {seed}"),
        scenario_spec: scenario.clone(),
    };
    Ok(Judged { outcome, report })
}

/// Runs a scenario whose CRDT is one of ours, as named in its `[crdt]` table.
pub fn judge_builtin(scenario: &Scenario, seed: u64) -> Result<RunReport, ScenarioError> {
    judge_builtin_until(scenario, seed, None)
}

/// [`judge_builtin`], stopping early once `stop` is raised, like [`judge_until`].
pub fn judge_builtin_until(
    scenario: &Scenario,
    seed: u64,
    stop: Option<&AtomicBool>,
) -> Result<RunReport, ScenarioError> {
    struct Judge<'a> {
        scenario: &'a Scenario,
        seed: u64,
        stop: Option<&'a AtomicBool>,
    }
    impl CrdtVisitor for Judge<'_> {
        type Output = Result<RunReport, ScenarioError>;
        fn visit<C: BuiltinCrdt>(self, make: impl Replicas<C> + Copy) -> Self::Output {
            Ok(judge_until(self.scenario, self.seed, &make, self.stop)?.report)
        }
    }
    scenario.crdt.dispatch(Judge {
        scenario,
        seed,
        stop,
    })
}

/// A liveness failure as a violation: the sentence, and the nodes that keep talking (a sync
/// loop) or the live replicas (a stall).
fn liveness_violation<C: OpCrdt>(outcome: &Outcome<C>, liveness: &Liveness) -> Violation {
    let (detail, replicas) = match liveness {
        Liveness::SyncLoop { detail, talkers } => (detail.clone(), talkers.clone()),
        Liveness::Stalled { detail } => (
            detail.clone(),
            outcome
                .replicas
                .iter()
                .filter(|r| r.status == Status::Up)
                .map(|r| r.id)
                .collect(),
        ),
    };
    Violation {
        oracle: crate::oracles::Oracle::Liveness,
        event_index: None,
        at_us: outcome.end_us,
        replicas,
        detail,
        states: Vec::new(),
    }
}

fn non_vacuity<C: OpCrdt>(outcome: &Outcome<C>) -> NonVacuity {
    let late: Vec<ReplicaId> = outcome
        .faults
        .iter()
        .filter_map(|f| match f {
            FaultSpec::Join { replica, .. } => Some(*replica),
            FaultSpec::Crash {
                replica,
                restart: Some(_),
                ..
            } => Some(*replica),
            _ => None,
        })
        .collect();
    let everything = outcome.updates_issued as u32;
    let late_joins_caught_up = outcome
        .replicas
        .iter()
        .filter(|r| {
            late.contains(&r.id) && r.status == Status::Up && r.delivered.len() == everything
        })
        .count() as u64;
    let coverage = outcome.coverage;
    NonVacuity {
        coverage,
        late_joins_caught_up,
        vacuous: coverage.concurrent_writes_same_key == 0 && outcome.replicas.len() > 1,
    }
}

fn meets_expectation(
    scenario: &Scenario,
    verdict: Verdict,
    converged_at_ms: Option<f64>,
    coverage: &NonVacuity,
) -> (bool, Vec<String>) {
    let expect = &scenario.expect;
    let mut notes = Vec::new();
    let mut met = verdict.meets(expect.verdict);
    notes.push(if verdict == expect.verdict {
        format!("verdict \"{}\", as expected", kebab(&verdict))
    } else if met {
        format!(
            "verdict \"{}\", one way of \"{}\", as expected",
            kebab(&verdict),
            kebab(&expect.verdict)
        )
    } else {
        format!(
            "expected verdict \"{}\", got \"{}\"",
            kebab(&expect.verdict),
            kebab(&verdict)
        )
    });
    if let (Some(bound), Some(at_ms)) = (expect.converged_by, converged_at_ms) {
        if at_ms > bound.as_ms_f64() {
            met = false;
            notes.push(format!(
                "converged at {at_ms:.1} ms, later than the expected {bound}"
            ));
        }
    }
    if let Some(min) = expect.conflicts_min {
        let seen = coverage.coverage.concurrent_writes_same_key;
        if seen < min {
            met = false;
            notes.push(format!(
                "exercised {seen} concurrent writes to one key, fewer than the expected {min}"
            ));
        }
    }
    (met, notes)
}

/// A compact label of what a scenario runs, for the convergence matrix: `(crdt, protocol, faults)`.
pub fn matrix_labels(scenario: &Scenario) -> (String, String, String) {
    // The clock is part of the row: runs that differ only in their clock are different configurations.
    let crdt = match &scenario.crdt {
        CrdtSpec::LwwGrid(c) => format!(
            "lww-grid {}, {} clock",
            kebab(&c.tie_break),
            kebab(&scenario.clock)
        ),
        CrdtSpec::LwwDict(c) => format!(
            "lww-dict {} bias, {}, {} clock",
            kebab(&c.bias),
            kebab(&c.tie_break),
            kebab(&scenario.clock)
        ),
        CrdtSpec::Rga => format!("rga, {} clock", kebab(&scenario.clock)),
    };
    let protocol = &scenario.protocol;
    let mut protocol_label = format!("{} / {}", kebab(&protocol.kind), kebab(&protocol.topology));
    if protocol.anti_entropy.is_some() {
        protocol_label.push_str(" + anti-entropy");
    }
    // Options that change what the protocol does are part of the column too, so that one cell
    // never mixes two configurations.
    if protocol.kind == converge_netsim::ProtocolKind::DeltaSync {
        let _ = write!(protocol_label, " by {}", kebab(&protocol.delta_position));
    }
    if !protocol.snapshot_on_join {
        protocol_label.push_str(", no snapshot on join");
    }
    if protocol.kind == converge_netsim::ProtocolKind::OpStream {
        let _ = write!(
            protocol_label,
            ", {} on reconnect",
            kebab(&protocol.on_reconnect)
        );
    }
    if scenario.network.links_in_order() {
        protocol_label.push_str(", in order");
    }
    let mut faults: Vec<String> = Vec::new();
    if scenario.network.drop > 0.0 {
        faults.push("drop".into());
    }
    if scenario.network.duplicate > 0.0 {
        faults.push("duplicate".into());
    }
    for fault in &scenario.faults {
        let name = serde_json::to_value(fault)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default();
        if !faults.contains(&name) {
            faults.push(name);
        }
    }
    if scenario.swarm.is_some() {
        faults.push("swarm".into());
    }
    let faults = if faults.is_empty() {
        "none".to_string()
    } else {
        faults.join(", ")
    };
    (crdt, protocol_label, faults)
}

fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use converge_crdt::ClockKind;

    use super::*;

    /// Scenarios 10 to 12 differ only by their clock, 3 and 4 only by the snapshot on join: each
    /// is a configuration of its own in the matrix.
    #[test]
    fn matrix_labels_tell_configurations_apart() {
        let lamport = Scenario::default();
        let wall = Scenario {
            clock: ClockKind::WallClock,
            ..Scenario::default()
        };
        assert_ne!(matrix_labels(&lamport).0, matrix_labels(&wall).0);
        assert_eq!(matrix_labels(&lamport).0, "lww-grid peer-id, lamport clock");
        let mut no_snapshot = Scenario::default();
        no_snapshot.protocol.snapshot_on_join = false;
        assert_eq!(
            matrix_labels(&no_snapshot).1,
            "state-broadcast / mesh, no snapshot on join"
        );
        assert_ne!(matrix_labels(&lamport).1, matrix_labels(&no_snapshot).1);
    }
}
