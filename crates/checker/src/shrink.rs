//! Shrinking: from a failing run to the smallest scenario that fails the same way.
//!
//! A failing seeded run is first *materialized*: its generated writes become an explicit list and
//! its swarm-drawn faults become ordinary faults, so that nothing about it depends on the workload or
//! fault streams any more. Delta debugging (ddmin) then removes writes, then faults, then replicas,
//! keeping each removal only if the run still ends with the same verdict. Last, the minimal run is
//! turned into a *scripted* scenario (every message's fate written down, no randomness) when that
//! replays to the same verdict, so that it reproduces independently of the random generator.

use std::collections::BTreeMap;

use converge_crdt::{OpCrdt, ReplicaId};
use converge_netsim::{
    BuiltinCrdt, CrdtVisitor, DrawnIntent, DropCause, EventKind, Fate, FaultSpec, Outcome,
    Replicas, Runner, Scenario, ScenarioError, ScenarioProtocol, Script, ScriptedFate, SimDuration,
    TimedOp, Verdict,
};
use serde::Serialize;

use crate::judge::{judge_with, Judged, RunReport};

/// Runs the shrinker may spend on one failure, all passes together.
pub const SHRINK_RUNS_MAX: u32 = 400;

/// The events the shrinker's candidate runs may spend on one failure, all together, as a share of
/// the scenario's `bounds.events-max`: one half. A run of a scenario file is held to the work
/// `bounds.events-max` allows (`RUN_WORK_MAX` in `converge-netsim`'s validation), so shrinking
/// a failure at that size costs at most half as much again, instead of up to 400 runs of it.
pub const SHRINK_EVENTS_SHARE_DIVISOR: u64 = 2;

/// How big a run is, in the units shrinking removes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunSize {
    pub replicas: u32,
    pub writes: u64,
    pub faults: u64,
    pub messages: u64,
    pub events: u64,
}

/// What shrinking found.
#[derive(Clone, Debug, Serialize)]
pub struct Shrunk {
    /// The verdict every kept step preserved.
    pub verdict: Verdict,
    pub original: RunSize,
    pub minimal: RunSize,
    /// The minimal scenario: scripted when the scripted form replays to the same verdict.
    pub scenario: Scenario,
    pub scripted: bool,
    /// The seed to run `scenario` with (irrelevant when scripted, kept for the command line).
    pub seed: u64,
    /// Runs spent.
    pub runs: u32,
    /// The report of the minimal run.
    pub report: RunReport,
}

impl Shrunk {
    /// The sizes before and after, in words: `2 replicas, 2 writes, 132 messages; shrunk from 4
    /// replicas, 43 writes, 504 messages`.
    pub fn sizes(&self) -> String {
        let (minimal, original) = (&self.minimal, &self.original);
        format!(
            "{} replicas, {} writes, {} messages; shrunk from {} replicas, {} writes, {} messages",
            minimal.replicas,
            minimal.writes,
            minimal.messages,
            original.replicas,
            original.writes,
            original.messages
        )
    }
}

/// Shrinks a run of one of our CRDTs, as named in the scenario's `[crdt]` table.
pub fn shrink_builtin(scenario: &Scenario, seed: u64) -> Result<Option<Shrunk>, ScenarioError> {
    struct Shrink<'a> {
        scenario: &'a Scenario,
        seed: u64,
    }
    impl CrdtVisitor for Shrink<'_> {
        type Output = Result<Option<Shrunk>, ScenarioError>;
        fn visit<C: BuiltinCrdt>(self, make: impl Replicas<C> + Copy) -> Self::Output {
            shrink(self.scenario, self.seed, &make)
        }
    }
    scenario.crdt.dispatch(Shrink { scenario, seed })
}

struct Shrinker<'a, C: OpCrdt> {
    protocol: &'a dyn Runner<C>,
    make: &'a dyn Replicas<C>,
    seed: u64,
    verdict: Verdict,
    runs: u32,
    /// Events the candidate runs may still spend ([`SHRINK_EVENTS_SHARE_DIVISOR`]).
    events_left: u64,
}

impl<C: OpCrdt> Shrinker<'_, C> {
    /// Whether `candidate` still fails the same way. Invalid candidates (a removal that leaves a
    /// fault naming a missing replica) simply do not count as failing.
    fn fails(&mut self, candidate: &Scenario) -> bool {
        self.try_run(candidate)
            .is_some_and(|judged| judged.report.verdict == self.verdict)
    }

    /// Runs `candidate` if the runs and events left allow it.
    fn try_run(&mut self, candidate: &Scenario) -> Option<Judged<C>> {
        if self.runs >= SHRINK_RUNS_MAX || self.events_left == 0 {
            return None;
        }
        self.runs += 1;
        // A candidate runs within the events left. One that reaches them ends with a bound,
        // which is not the failure sought; one that does not ran exactly as it would have with
        // its own bound, so what is kept is unchanged.
        let mut limited = candidate.clone();
        limited.bounds.events_max = limited.bounds.events_max.min(self.events_left);
        let judged = self.judge(&limited).ok()?;
        self.events_left = self.events_left.saturating_sub(judged.report.events);
        Some(judged)
    }

    fn judge(&self, scenario: &Scenario) -> Result<Judged<C>, ScenarioError> {
        judge_with(scenario, self.seed, self.protocol, self.make, None)
    }
}

/// Shrinks a failing run of `scenario` with `seed`. Returns `None` when the run converges (there is
/// nothing to shrink).
pub fn shrink<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
) -> Result<Option<Shrunk>, ScenarioError> {
    shrink_with(scenario, seed, &ScenarioProtocol, make)
}

/// [`shrink`] under `protocol`, a user's own or the scenario's.
pub fn shrink_with<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    protocol: &dyn Runner<C>,
    make: &dyn Replicas<C>,
) -> Result<Option<Shrunk>, ScenarioError> {
    // Every update record is needed to list the generated writes; keeping them all changes
    // nothing else in the run.
    let mut keep_records = scenario.clone();
    keep_records.bounds.update_records_kept_max = u64::MAX;
    let original = judge_with(&keep_records, seed, protocol, make, None)?;
    let verdict = original.report.verdict;
    if matches!(verdict, Verdict::Converges | Verdict::BoundReached) {
        return Ok(None);
    }
    let mut shrinker = Shrinker {
        protocol,
        make,
        seed,
        verdict,
        runs: 1,
        events_left: scenario.bounds.events_max / SHRINK_EVENTS_SHARE_DIVISOR,
    };
    let original_size = size_of(scenario, &original.report);

    // Materialize the generated writes and drawn faults, if that keeps the failure.
    let mut current = scenario.clone();
    let mut materialized = materialize(scenario, &original.outcome);
    // Swarm mode also drew the network's loss and duplication: keep the rates that were in force.
    materialized.network.drop = original.outcome.network_drop;
    materialized.network.duplicate = original.outcome.network_duplicate;
    if shrinker.fails(&materialized) {
        current = materialized;
        let ops = current.workload.ops.clone();
        current.workload.ops = ddmin(ops, |ops| {
            let mut candidate = current.clone();
            candidate.workload.ops = ops.to_vec();
            shrinker.fails(&candidate)
        });
        if current.workload.ops.iter().any(|op| op.drawn.is_some()) {
            // Simpler intents often make writes removable that were not (a delete of what a
            // removed insert put there): remove writes once more, then write the draws down.
            simplify_drawn_intents(&mut shrinker, &mut current);
            let ops = current.workload.ops.clone();
            current.workload.ops = ddmin(ops, |ops| {
                let mut candidate = current.clone();
                candidate.workload.ops = ops.to_vec();
                shrinker.fails(&candidate)
            });
            if let Ok(judged) = shrinker.judge(&current) {
                write_drawn_intents(&mut current, &judged.outcome);
            }
        }
    }
    let faults = current.faults.clone();
    current.faults = ddmin(faults, |faults| {
        let mut candidate = current.clone();
        candidate.faults = faults.to_vec();
        shrinker.fails(&candidate)
    });
    // Fewer replicas: drop any one (renumbering the others) while the failure stays.
    let mut replica = current.replicas;
    while replica > 0 && current.replicas > 1 {
        replica -= 1;
        if replica >= current.replicas {
            continue;
        }
        let candidate = without_replica(&current, replica);
        if shrinker.fails(&candidate) {
            current = candidate;
        }
    }
    // Less time: end the workload right after the last write or fault.
    if let Some(last_us) = last_scheduled_us(&current) {
        let mut candidate = current.clone();
        candidate.duration = SimDuration::from_us(last_us + 1_000);
        if candidate.duration < current.duration && shrinker.fails(&candidate) {
            current = candidate;
        }
    }

    // Write every message's fate down, and keep the scripted form if it replays the failure.
    let mut scripted = false;
    let minimal_run = shrinker.judge(&current)?;
    if current.workload.rate == 0.0 && current.swarm.is_none() {
        for coins in coin_patterns(&minimal_run.outcome.trace) {
            let candidate = scripted_from(&current, &minimal_run.outcome.trace, coins);
            if shrinker.fails(&candidate) {
                current = candidate;
                scripted = true;
                break;
            }
        }
    }
    if scripted {
        // Let dropped messages through where the failure does not need the drop.
        let fates = current
            .script
            .as_ref()
            .map(|s| s.fates.clone())
            .unwrap_or_default();
        let (drops, others): (Vec<ScriptedFate>, Vec<ScriptedFate>) =
            fates.into_iter().partition(|f| f.fate == Fate::Drop);
        let kept_drops = ddmin(drops, |drops| {
            let mut candidate = current.clone();
            if let Some(script) = candidate.script.as_mut() {
                script.fates = others.iter().chain(drops).cloned().collect();
                script.fates.sort_by_key(|f| f.message);
            }
            shrinker.fails(&candidate)
        });
        if let Some(script) = current.script.as_mut() {
            script.fates = others.into_iter().chain(kept_drops).collect();
            script.fates.sort_by_key(|f| f.message);
        }
    }
    let mut last = shrinker.judge(&current)?;
    debug_assert_eq!(
        last.report.verdict, verdict,
        "the shrunk scenario must fail the same way"
    );
    current.name = format!("{}-minimal", scenario.name);
    current.description = format!(
        "Shrunk from {} seed {seed}: the smallest run found that still ends with verdict \"{}\".",
        scenario.name,
        serde_json::to_value(verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    current.expect.verdict = verdict;
    last.report.scenario = current.name.clone();
    last.report.scenario_spec = current.clone();
    Ok(Some(Shrunk {
        verdict,
        original: original_size,
        minimal: size_of(&current, &last.report),
        scenario: current,
        scripted,
        seed,
        runs: shrinker.runs,
        report: last.report,
    }))
}

fn size_of(scenario: &Scenario, report: &RunReport) -> RunSize {
    RunSize {
        replicas: scenario.replicas,
        writes: report.updates,
        faults: report.faults.len() as u64,
        messages: report.messages.sent,
        events: report.events,
    }
}

/// The scenario with its generated writes listed explicitly and its swarm faults written out. A
/// write whose intent a generator drew is listed as that draw ([`TimedOp::drawn`]), so that
/// shrinking can simplify it through the generator; the others as the intents they were.
fn materialize<C: OpCrdt>(scenario: &Scenario, outcome: &Outcome<C>) -> Scenario {
    let seeds: BTreeMap<u32, u64> = outcome.intent_seeds.iter().copied().collect();
    let mut explicit = scenario.clone();
    explicit.workload.rate = 0.0;
    explicit.workload.ops = outcome
        .updates
        .iter()
        .map(|u| {
            let at = SimDuration::from_us(u.at_us);
            match seeds.get(&u.index) {
                Some(&seed) => TimedOp {
                    at,
                    replica: u.id.origin,
                    drawn: Some(DrawnIntent {
                        seed,
                        simplified: Vec::new(),
                    }),
                    ..TimedOp::default()
                },
                None => TimedOp::of_intent(at, u.id.origin, &u.intent),
            }
        })
        .collect();
    explicit.faults = effective_faults(&outcome.faults);
    explicit.swarm = None;
    explicit
}

/// Simplifies each drawn intent of `current` through its generator's own shrinking, as proptest
/// walks a value tree: simplify while the run still fails the same way, step back (complicate)
/// when it does not, until a step no longer changes the intent.
fn simplify_drawn_intents<C: OpCrdt>(shrinker: &mut Shrinker<'_, C>, current: &mut Scenario) {
    for op in 0..current.workload.ops.len() {
        let Some(drawn) = current.workload.ops[op].drawn.clone() else {
            continue;
        };
        let mut steps = drawn.simplified;
        let mut simplify = true;
        let mut last: Option<C::Intent> = None;
        for _ in 0..INTENT_STEPS_MAX {
            let mut candidate = current.clone();
            steps.push(simplify);
            if let Some(drawn) = candidate.workload.ops[op].drawn.as_mut() {
                drawn.simplified = steps.clone();
            }
            let Some(judged) = shrinker.try_run(&candidate) else {
                break;
            };
            let intent = intent_of(&candidate, op, &judged.outcome);
            if intent.is_none() || intent == last {
                break;
            }
            last = intent;
            simplify = judged.report.verdict == shrinker.verdict;
            if simplify {
                *current = candidate;
            }
        }
    }
}

/// Simplification steps tried per drawn intent: a binary search over a 64-bit value takes 64.
const INTENT_STEPS_MAX: usize = 64;

/// The intent explicit write `op` of `scenario` wrote in `outcome`, if it wrote one: the record
/// issued at its replica at its time, the n-th such record for the n-th such write.
fn intent_of<C: OpCrdt>(scenario: &Scenario, op: usize, outcome: &Outcome<C>) -> Option<C::Intent> {
    let ops = &scenario.workload.ops;
    let same = |o: &TimedOp| o.replica == ops[op].replica && o.at == ops[op].at;
    let nth = ops[..op].iter().filter(|o| same(o)).count();
    outcome
        .updates
        .iter()
        .filter(|u| u.id.origin == ops[op].replica && u.at_us == ops[op].at.us)
        .nth(nth)
        .map(|u| u.intent.clone())
}

/// Every drawn write of `scenario` written down as the intent it drew in `outcome`; a drawn
/// write that wrote nothing (its replica was down, or the generator had nothing to offer) is
/// left out, as it changed nothing.
fn write_drawn_intents<C: OpCrdt>(scenario: &mut Scenario, outcome: &Outcome<C>) {
    let intents: Vec<Option<C::Intent>> = (0..scenario.workload.ops.len())
        .map(|op| intent_of(scenario, op, outcome))
        .collect();
    let ops = std::mem::take(&mut scenario.workload.ops);
    scenario.workload.ops = ops
        .into_iter()
        .zip(intents)
        .filter_map(|(op, intent)| match (&op.drawn, intent) {
            (None, _) => Some(op),
            (Some(_), Some(intent)) => Some(TimedOp::of_intent(op.at, op.replica, &intent)),
            (Some(_), None) => None,
        })
        .collect();
}

/// The faults of a run (listed and swarm-drawn) rewritten as the plan they amount to, which
/// validation accepts where the draws alone would not be: swarm mode draws faults independently,
/// so one replica may get two joins, a crash before it joins or two crashes that overlap, and two
/// server outages may overlap. The simulator resolves those by status: a join of a replica already
/// up, a crash of one not up, a restart of one not crashed do nothing, and whichever end comes
/// first ends a crash or an outage. Replaying that here (events in time order, ties in list
/// order, each fault's start before its end, as the simulator schedules them) leaves one join per
/// replica, and the crashes and outages that took effect, from the start that took effect to the
/// end that did, with the end's durability. Partitions, isolations, bridges, leaves and clock
/// skews stay as they are. Each rewritten fault keeps the list position of the fault whose start
/// took effect, so ties with other faults fall as before; shrinking still checks that the
/// rewritten run fails the same way.
fn effective_faults(faults: &[FaultSpec]) -> Vec<FaultSpec> {
    #[derive(Clone, Copy, PartialEq)]
    enum Phase {
        Start,
        End,
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Status {
        Waiting,
        Up,
        Crashed,
        Left,
    }
    let mut events: Vec<(SimDuration, usize, u8, Phase)> = Vec::new();
    let mut kept: Vec<(usize, FaultSpec)> = Vec::new();
    let mut status: std::collections::BTreeMap<ReplicaId, Status> = Default::default();
    for (i, fault) in faults.iter().enumerate() {
        match *fault {
            FaultSpec::Join { at, replica } => {
                status.insert(replica, Status::Waiting);
                events.push((at, i, 0, Phase::Start));
            }
            FaultSpec::Crash { at, restart, .. } => {
                events.push((at, i, 0, Phase::Start));
                events.extend(restart.map(|r| (r, i, 1, Phase::End)));
            }
            FaultSpec::ServerOutage { at, until } => {
                events.push((at, i, 0, Phase::Start));
                events.push((until, i, 1, Phase::End));
            }
            FaultSpec::Leave { at, .. } => {
                events.push((at, i, 0, Phase::Start));
                kept.push((i, fault.clone()));
            }
            _ => kept.push((i, fault.clone())),
        }
    }
    events.sort_by_key(|&(at, i, order, _)| (at, i, order));
    // Crashes (by replica) and the outage that took effect and have not ended: start time and the
    // index of the fault that started them.
    let mut open_crashes: std::collections::BTreeMap<ReplicaId, (SimDuration, usize)> =
        Default::default();
    let mut open_outage: Option<(SimDuration, usize)> = None;
    for (time, i, _, phase) in events {
        match (&faults[i], phase) {
            (FaultSpec::Join { replica, .. }, _) => {
                let current = status.entry(*replica).or_insert(Status::Up);
                if *current == Status::Waiting {
                    *current = Status::Up;
                    kept.push((i, faults[i].clone()));
                }
            }
            (FaultSpec::Leave { replica, .. }, _) => {
                status.insert(*replica, Status::Left);
                open_crashes.remove(replica);
            }
            (FaultSpec::Crash { replica, state, .. }, Phase::Start) => {
                let current = status.entry(*replica).or_insert(Status::Up);
                if *current == Status::Up {
                    *current = Status::Crashed;
                    open_crashes.insert(*replica, (time, i));
                    // Stays open (never restarted) unless an end takes effect below.
                    kept.push((
                        i,
                        FaultSpec::Crash {
                            at: time,
                            replica: *replica,
                            restart: None,
                            state: *state,
                        },
                    ));
                }
            }
            (FaultSpec::Crash { replica, state, .. }, Phase::End) => {
                let current = status.entry(*replica).or_insert(Status::Up);
                if *current == Status::Crashed {
                    *current = Status::Up;
                    if let Some((_, started_by)) = open_crashes.remove(replica) {
                        if let Some((
                            _,
                            FaultSpec::Crash {
                                restart,
                                state: kept_state,
                                ..
                            },
                        )) = kept.iter_mut().rev().find(|(k, _)| *k == started_by)
                        {
                            *restart = Some(time);
                            *kept_state = *state;
                        }
                    }
                }
            }
            (FaultSpec::ServerOutage { .. }, Phase::Start) if open_outage.is_none() => {
                open_outage = Some((time, i));
            }
            (FaultSpec::ServerOutage { .. }, Phase::End) => {
                if let Some((at, started_by)) = open_outage.take() {
                    kept.push((started_by, FaultSpec::ServerOutage { at, until: time }));
                }
            }
            _ => {}
        }
    }
    kept.sort_by_key(|(i, _)| *i);
    kept.into_iter().map(|(_, fault)| fault).collect()
}

fn fault_replicas(fault: &FaultSpec) -> Vec<ReplicaId> {
    match fault {
        FaultSpec::Partition { groups, .. } => groups.iter().flatten().copied().collect(),
        FaultSpec::Bridge { groups, bridge, .. } => {
            groups.iter().flatten().copied().chain([*bridge]).collect()
        }
        FaultSpec::Isolate { replica, .. }
        | FaultSpec::Crash { replica, .. }
        | FaultSpec::Join { replica, .. }
        | FaultSpec::Leave { replica, .. }
        | FaultSpec::ClockSkew { replica, .. } => vec![*replica],
        FaultSpec::ConnectionDrop { nodes, .. } => nodes.to_vec(),
        FaultSpec::ServerOutage { .. } => Vec::new(),
    }
}

/// The scenario without replica `gone`: its writes, the faults naming it and its links go, and the
/// replicas above it are renumbered down by one.
fn without_replica(scenario: &Scenario, gone: ReplicaId) -> Scenario {
    let renumber = |r: ReplicaId| if r > gone { r - 1 } else { r };
    let mut fewer = scenario.clone();
    fewer.replicas -= 1;
    fewer.workload.ops.retain(|op| op.replica != gone);
    for op in &mut fewer.workload.ops {
        op.replica = renumber(op.replica);
    }
    fewer.faults.retain(|f| !fault_replicas(f).contains(&gone));
    for fault in &mut fewer.faults {
        renumber_fault(fault, &renumber);
    }
    if let Some(writers) = fewer.workload.writers.as_mut() {
        writers.retain(|w| *w != gone);
        writers.iter_mut().for_each(|w| *w = renumber(*w));
    }
    fewer
        .network
        .links
        .retain(|l| l.from != Some(gone) && l.to != Some(gone));
    for link in &mut fewer.network.links {
        link.from = link.from.map(renumber);
        link.to = link.to.map(renumber);
    }
    fewer
}

fn renumber_fault(fault: &mut FaultSpec, renumber: &dyn Fn(ReplicaId) -> ReplicaId) {
    match fault {
        FaultSpec::Partition { groups, .. } => {
            groups.iter_mut().flatten().for_each(|r| *r = renumber(*r))
        }
        FaultSpec::Bridge { groups, bridge, .. } => {
            groups.iter_mut().flatten().for_each(|r| *r = renumber(*r));
            *bridge = renumber(*bridge);
        }
        FaultSpec::Isolate { replica, .. }
        | FaultSpec::Crash { replica, .. }
        | FaultSpec::Join { replica, .. }
        | FaultSpec::Leave { replica, .. }
        | FaultSpec::ClockSkew { replica, .. } => *replica = renumber(*replica),
        // The relay server's number is the replica count, so it moves down with the others.
        FaultSpec::ConnectionDrop { nodes, .. } => nodes.iter_mut().for_each(|n| *n = renumber(*n)),
        FaultSpec::ServerOutage { .. } => {}
    }
}

fn last_scheduled_us(scenario: &Scenario) -> Option<u64> {
    if scenario.workload.rate != 0.0 {
        return None;
    }
    let ops = scenario.workload.ops.iter().map(|op| op.at.us);
    let reconnect_after = scenario.network.reconnect_after;
    let faults = scenario.faults.iter().map(|f| match f {
        FaultSpec::Join { at, .. } | FaultSpec::Leave { at, .. } => at.us,
        FaultSpec::ClockSkew { .. } => 0,
        FaultSpec::Partition { at, .. }
        | FaultSpec::Isolate { at, .. }
        | FaultSpec::Bridge { at, .. }
        | FaultSpec::Crash { at, .. }
        | FaultSpec::ServerOutage { at, .. }
        | FaultSpec::ConnectionDrop { at, .. } => f.end(reconnect_after).unwrap_or(*at).us,
    });
    ops.chain(faults).max()
}

/// Coin sequences to try when scripting a run: random tie-breaks were drawn from the seed and are
/// not in the trace, so the scripted form tries a few fixed patterns, long enough for every
/// delivery of the run.
fn coin_patterns(trace: &[converge_netsim::TraceEvent]) -> Vec<Vec<bool>> {
    let deliveries = trace
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Deliver { .. }))
        .count();
    vec![
        Vec::new(),
        vec![true; deliveries],
        (0..deliveries).map(|i| i % 2 == 0).collect(),
        (0..deliveries).map(|i| i % 2 == 1).collect(),
    ]
}

/// The scripted form of a run: each sent message gets the fate it had in `trace`.
fn scripted_from(
    scenario: &Scenario,
    trace: &[converge_netsim::TraceEvent],
    coins: Vec<bool>,
) -> Scenario {
    use std::collections::BTreeMap;
    let mut sent_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut delivered_after: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut dropped: Vec<u64> = Vec::new();
    for event in trace {
        match event.kind {
            EventKind::Send { message, .. } => {
                sent_at.insert(message, event.at_us);
            }
            EventKind::Deliver { message, .. } => {
                let sent = sent_at.get(&message).copied().unwrap_or(event.at_us);
                delivered_after
                    .entry(message)
                    .or_default()
                    .push(event.at_us - sent);
            }
            EventKind::Drop {
                message,
                cause: DropCause::Network,
                ..
            } => dropped.push(message),
            // Lost to a dropped connection when it would have arrived (or at once, sent on a
            // connection that was down): scripted to arrive then, so that the replayed drop
            // loses it again, where an earlier arrival would have slipped through.
            EventKind::Drop {
                message,
                cause: DropCause::Disconnected,
                ..
            } => {
                let sent = sent_at.get(&message).copied().unwrap_or(event.at_us);
                delivered_after
                    .entry(message)
                    .or_default()
                    .push(event.at_us - sent);
            }
            _ => {}
        }
    }
    let mut fates: Vec<ScriptedFate> = Vec::new();
    for &message in sent_at.keys() {
        let fate = match delivered_after.get(&message).map(Vec::as_slice) {
            Some([after]) => Fate::Deliver {
                after: SimDuration::from_us(*after),
            },
            Some([after, again, ..]) => Fate::Duplicate {
                after: SimDuration::from_us(*after),
                again: SimDuration::from_us(*again),
            },
            _ if dropped.contains(&message) => Fate::Drop,
            // Lost to a partition or a down node: the fault itself loses it again on replay.
            _ => continue,
        };
        fates.push(ScriptedFate { message, fate });
    }
    let mut scripted = scenario.clone();
    scripted.script = Some(Script {
        fates,
        coins,
        ..Script::default()
    });
    scripted
}

/// Delta debugging (Zeller's ddmin): a 1-minimal subsequence of `items` for which `fails` holds,
/// assuming it holds for `items` itself.
pub fn ddmin<T: Clone>(items: Vec<T>, mut fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut current = items;
    let mut granularity = 2usize;
    while current.len() >= 2 {
        let chunk = current.len().div_ceil(granularity);
        let chunks: Vec<Vec<T>> = current.chunks(chunk).map(<[T]>::to_vec).collect();
        let mut reduced = false;
        // Try each chunk alone, then each complement.
        for piece in &chunks {
            if fails(piece) {
                current = piece.clone();
                granularity = 2;
                reduced = true;
                break;
            }
        }
        if !reduced {
            for skip in 0..chunks.len() {
                let complement: Vec<T> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .flat_map(|(_, c)| c.clone())
                    .collect();
                if fails(&complement) {
                    current = complement;
                    granularity = (granularity - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if granularity >= current.len() {
                break;
            }
            granularity = (granularity * 2).min(current.len());
        }
    }
    if current.len() == 1 && fails(&[]) {
        current.clear();
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use converge_netsim::Durability;

    #[test]
    fn ddmin_finds_the_pair_that_fails() {
        let items: Vec<u32> = (0..40).collect();
        let minimal = ddmin(items, |s| s.contains(&7) && s.contains(&31));
        assert_eq!(minimal, vec![7, 31]);
    }

    #[test]
    fn ddmin_can_remove_everything() {
        assert_eq!(ddmin(vec![1, 2, 3], |_| true), Vec::<i32>::new());
    }

    fn secs(s: u64) -> SimDuration {
        SimDuration::from_secs(s)
    }

    fn crash(at: u64, replica: u32, restart: Option<u64>, state: Durability) -> FaultSpec {
        FaultSpec::Crash {
            at: secs(at),
            replica,
            restart: restart.map(secs),
            state,
        }
    }

    /// Regression (issue 17): about one swarm seed in five drew faults that validation now refuses
    /// when written down (two joins of one replica, a crash before the join, overlapping crashes),
    /// so shrinking could not materialize those runs. Their effective plan is accepted.
    #[test]
    fn drawn_faults_become_the_plan_the_simulator_ran() {
        use Durability::{Durable, Volatile};
        let join = |at, replica| FaultSpec::Join {
            at: secs(at),
            replica,
        };
        let outage = |at, until| FaultSpec::ServerOutage {
            at: secs(at),
            until: secs(until),
        };
        let drawn = vec![
            join(4, 1),
            crash(1, 0, Some(6), Durable),
            crash(3, 0, Some(5), Volatile), // starts while crashed; its restart ends the first
            join(2, 1),                     // the earlier join of replica 1 is the one that counts
            crash(1, 1, Some(3), Durable),  // before replica 1 joins: nothing
            crash(7, 0, None, Durable),
            outage(2, 9),
            outage(3, 4),
        ];
        assert_eq!(
            effective_faults(&drawn),
            vec![
                crash(1, 0, Some(5), Volatile),
                join(2, 1),
                crash(7, 0, None, Durable),
                outage(2, 4),
            ]
        );
        let mut scenario = Scenario {
            faults: effective_faults(&drawn),
            ..Scenario::default()
        };
        scenario.protocol.topology = converge_netsim::Topology::Relay;
        scenario.validate().expect("the effective plan is valid");
        let valid = vec![join(2, 1), crash(3, 1, Some(4), Durable)];
        assert_eq!(
            effective_faults(&valid),
            valid,
            "a valid plan is kept as it is"
        );
    }

    #[test]
    fn ddmin_keeps_a_single_needed_item() {
        assert_eq!(ddmin(vec![1, 2, 3, 4, 5], |s| s.contains(&4)), vec![4]);
    }
}
