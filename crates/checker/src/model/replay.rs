//! From a model-checker counterexample to a scripted netsim scenario that replays it.
//!
//! A counterexample carries the model's own steps ([`Counterexample::path`]): writes, deliveries
//! (with the coin flips of the random tie-break), drops and timers. [`Counterexample::to_scenario`]
//! takes those steps again through the model, from the initial system, checking that each is one
//! the model offers there and that it reads as the counterexample says, and lays them out in
//! virtual time as a scripted scenario, which netsim runs without drawing a single random number:
//!
//! - a timer fires at the time netsim gives it: the time the step that set it ran, plus the delay
//!   it was set with;
//! - every other step gets its own instant, [`STEP_US`] after the one before (closer together
//!   where the next timer is nearer), always before the next timer is due, so that netsim meets
//!   the steps in the path's order;
//! - each write becomes an explicit operation at its step's time on its origin replica;
//! - each message gets a scripted fate: delivered at the time of the step that delivers it (a
//!   second delivery of the same message, which duplicating networks allow, becomes a duplicate
//!   fate), dropped if the path drops it (or if the path's network held it as one copy of a
//!   message already in flight), and delivered after the path's last step if the path leaves it in
//!   flight;
//! - the coins the steps flipped, in order, become the script's coins;
//! - a connection drop becomes a `connection-drop` fault at its step's time, whose reconnect is
//!   the time of the step that brings the connection back (after the path's leftovers if none
//!   does), on a network whose links are in order. What the drop lost is scheduled to arrive
//!   just after it, so that netsim loses it as the model did (to the dropped connection), and a
//!   message sent while the connection was down gets a drop fate, which netsim never reads: it
//!   loses the message at once.
//!
//! The model runs the very protocol netsim runs, on the same handlers in the same order, with the
//! protocol's random stream rooted at zero as a scripted run roots it, so the `k`-th message the
//! path sends is message `k` of the replay.
//!
//! After the path: for strong convergence the violation has happened and netsim's verdict
//! (diverges) cannot be undone. For "quiescent implies converged" the last system is quiescent:
//! its fair continuation, which netsim's delivery of the leftovers and its later timers follow,
//! teaches no replica anything, so the run ends not converged.
//!
//! The replay expects convergence (the default `[expect]`), so running it reports the failure
//! the checker found and exits 1.

use std::collections::{BTreeMap, BTreeSet};

use converge_crdt::{ClockKind, LwwDictConfig, LwwGridConfig};
use converge_netsim::explore::{Flight, System};
use converge_netsim::{
    CrdtSpec, Fate, FaultSpec, NetworkSpec, ProtocolKind, ProtocolSpec, Scenario, Script,
    ScriptedFate, SimDuration, TimedOp, Topology, WorkloadSpec,
};
use serde::Serialize;
use stateright::{Expectation, Model};

use super::system::{CheckedCrdt, CheckedProtocol, ModelAction, SeamModel};
use super::{
    describe_action, with_model, CheckConfig, CheckError, Counterexample, Job, Mode, ModelCrdt,
    ModelProtocol, NetworkKind, ValueChoice,
};

/// Virtual time between two consecutive steps of a counterexample in its replay, where the next
/// timer leaves room.
pub const STEP_US: u64 = 1_000;

/// The period of the anti-entropy rounds, in the model and in the replay.
pub const ANTI_ENTROPY_INTERVAL_US: u64 = 100_000;

/// The settle period of a replay: long enough for the messages the path leaves in flight, which
/// are delivered [`STEP_US`] apart after the path's last step.
pub const REPLAY_SETTLE_US: u64 = 1_000_000;

/// Why a counterexample cannot become a scripted scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("invalid configuration: {0}")]
    Config(#[from] CheckError),
    #[error(
        "step {step} of the counterexample ({action}) is not a step the model can take there: \
         the counterexample does not belong to this configuration"
    )]
    NotInModel { step: usize, action: String },
    #[error("the counterexample's last state does not violate `{property}` in this configuration")]
    NoViolation { property: String },
    #[error(
        "step {step} delivers a message a third time ({action}); netsim delivers a message at \
         most twice (once and one duplicate), so the path cannot be scripted"
    )]
    TooManyCopies { step: usize, action: String },
    #[error(
        "step {step} ({action}) cannot be placed in virtual time: a timer is due before it, so \
         netsim would fire the timer first"
    )]
    Unschedulable { step: usize, action: String },
    #[error("netsim refused the replay scenario: {0}")]
    Scenario(String),
}

impl Counterexample {
    /// The scripted netsim scenario that replays this counterexample; `config` is the
    /// configuration that was checked. See the module docs for how the path maps onto netsim.
    ///
    /// Run it with [`crate::judge_builtin`] (any seed: scripted runs ignore it): a strong
    /// convergence counterexample ends with verdict diverges, a "quiescent implies converged" one
    /// with verdict not converged.
    pub fn to_scenario(&self, config: &CheckConfig) -> Result<Scenario, ReplayError> {
        struct Replay<'a>(&'a Counterexample, &'a CheckConfig);
        impl Job for Replay<'_> {
            type Output = Result<Scenario, ReplayError>;
            fn run<C: CheckedCrdt, P: CheckedProtocol<C>>(
                self,
                model: SeamModel<C, P>,
            ) -> Self::Output {
                let base = base_scenario(self.1, self.0, builtin_crdt(self.1));
                scripted(&model, self.0, base)
            }
        }
        with_model(config, Mode::Verify, Replay(self, config))?
    }
}

/// `base` with the path of `counterexample` laid out in it as explicit writes, message fates and
/// coins.
pub(crate) fn scripted<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    counterexample: &Counterexample,
    mut scenario: Scenario,
) -> Result<Scenario, ReplayError> {
    let schedule = schedule(model, counterexample)?;
    scenario.duration = SimDuration::from_us(schedule.end_us + STEP_US);
    scenario.settle = SimDuration::from_us(REPLAY_SETTLE_US + schedule.leftovers * STEP_US);
    scenario.faults.extend(schedule.connection_faults());
    scenario.workload.ops = schedule.ops;
    scenario.script = Some(Script {
        fates: schedule.fates,
        coins: schedule.coins,
        ..Script::default()
    });
    scenario
        .validate()
        .map_err(|e| ReplayError::Scenario(e.to_string()))?;
    Ok(scenario)
}

fn builtin_crdt(config: &CheckConfig) -> CrdtSpec {
    match config.crdt {
        ModelCrdt::Grid { tie_break } => CrdtSpec::LwwGrid(LwwGridConfig {
            rows: 1,
            cols: config.keys,
            tie_break,
        }),
        ModelCrdt::Dict { bias, tie_break } => CrdtSpec::LwwDict(LwwDictConfig { bias, tie_break }),
        ModelCrdt::Rga => CrdtSpec::Rga,
    }
}

/// The `[protocol]` table of a configuration, in the model and in its replay: the mesh, every
/// peer in each anti-entropy round, rounds every [`ANTI_ENTROPY_INTERVAL_US`].
pub(crate) fn protocol_spec(config: &CheckConfig) -> ProtocolSpec {
    let kind = match config.protocol {
        ModelProtocol::StateBroadcast => ProtocolKind::StateBroadcast,
        ModelProtocol::OpBroadcast => ProtocolKind::OpBroadcast,
        ModelProtocol::AntiEntropy => ProtocolKind::AntiEntropy,
        ModelProtocol::OpStream => ProtocolKind::OpStream,
    };
    ProtocolSpec {
        kind,
        topology: Topology::Mesh,
        fanout: config.replicas.saturating_sub(1).max(1),
        interval: SimDuration::from_us(ANTI_ENTROPY_INTERVAL_US),
        on_reconnect: config.on_reconnect,
        ..ProtocolSpec::default()
    }
}

/// Everything but the path's ops, fates and times.
pub(crate) fn base_scenario(
    config: &CheckConfig,
    counterexample: &Counterexample,
    crdt: CrdtSpec,
) -> Scenario {
    let name = config_name(config);
    Scenario {
        name: format!("check-{name}"),
        description: format!(
            "The model checker's {} counterexample to `{}` for {name} ({} steps), replayed by \
             netsim as a scripted scenario: explicit writes and message fates, no randomness.",
            if counterexample.minimal {
                "shortest"
            } else {
                "first"
            },
            counterexample.property,
            counterexample.depth
        ),
        replicas: config.replicas,
        crdt,
        clock: ClockKind::Lamport,
        protocol: protocol_spec(config),
        workload: WorkloadSpec {
            rate: 0.0,
            keys: config.keys,
            values: match config.values {
                ValueChoice::Own => u64::from(config.replicas),
                ValueChoice::AnyOf(n) => u64::from(n),
            },
            ..WorkloadSpec::default()
        },
        network: NetworkSpec {
            // The model's connections: links in order, which the scripted fates keep anyway;
            // this also tells the reader, and netsim's own judgement, what the links are.
            in_order: config.network == NetworkKind::Connections,
            ..NetworkSpec::default()
        },
        ..Scenario::default()
    }
}

/// A configuration in a few words, for file and scenario names:
/// `lww-grid-random-state-broadcast-reliable-3x1`.
pub fn config_name(config: &CheckConfig) -> String {
    let crdt = match config.crdt {
        ModelCrdt::Grid { tie_break } => format!("lww-grid-{}", kebab(&tie_break)),
        ModelCrdt::Dict { bias, tie_break } => {
            format!("lww-dict-{}-bias-{}", kebab(&bias), kebab(&tie_break))
        }
        ModelCrdt::Rga => "rga".to_string(),
    };
    let drops = match config.network {
        NetworkKind::Lossy | NetworkKind::LossyDuplicating => format!("-{}-drops", config.drops),
        NetworkKind::Connections => format!("-{}-connection-drops", config.connection_drops),
        _ => String::new(),
    };
    let protocol = match config.protocol {
        ModelProtocol::OpStream => format!("op-stream-{}", kebab(&config.on_reconnect)),
        other => kebab(&other),
    };
    format!(
        "{crdt}-{protocol}-{}{drops}-{}x{}",
        kebab(&config.network),
        config.replicas,
        config.writes_per_replica
    )
}

/// The kebab-case name serde gives a unit variant.
fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One message of the path, by its netsim number.
#[derive(Default)]
struct Sent {
    sent_us: u64,
    delivered_us: Vec<u64>,
    dropped: bool,
    /// When the connection it was in flight on dropped, losing it.
    lost_at_us: Option<u64>,
}

/// One connection drop of the path: its ends (lower first), when it dropped, and when it came
/// back if the path brings it back.
struct ConnectionDrop {
    nodes: [u32; 2],
    at_us: u64,
    reconnect_us: Option<u64>,
}

/// The path laid out in virtual time.
struct Schedule {
    ops: Vec<TimedOp>,
    fates: Vec<ScriptedFate>,
    coins: Vec<bool>,
    /// The time of the last step.
    end_us: u64,
    /// Messages the path leaves in flight, delivered after it.
    leftovers: u64,
    connection_drops: Vec<ConnectionDrop>,
}

impl Schedule {
    /// The path's connection drops as faults; a connection the path leaves down comes back
    /// after the leftovers have arrived.
    fn connection_faults(&self) -> impl Iterator<Item = FaultSpec> + '_ {
        let after_leftovers_us = self.end_us + (self.leftovers + 1) * STEP_US;
        self.connection_drops
            .iter()
            .map(move |drop| FaultSpec::ConnectionDrop {
                at: SimDuration::from_us(drop.at_us),
                nodes: drop.nodes,
                reconnect: Some(SimDuration::from_us(
                    drop.reconnect_us.unwrap_or(after_leftovers_us),
                )),
            })
    }
}

/// Where the replay stands while the path is laid out.
struct Clock {
    now_us: u64,
    /// Each pending timer's time in the replay, by id.
    due_us: BTreeMap<u64, u64>,
}

impl Clock {
    /// Timers `after` holds that `before` did not were set by this step, at `self.now_us`.
    fn learn_timers<C: CheckedCrdt, P: CheckedProtocol<C>>(
        &mut self,
        before: Option<&System<C, P>>,
        after: &System<C, P>,
    ) {
        let known: BTreeSet<u64> = before
            .map(|b| b.timers().map(|(id, ..)| id).collect())
            .unwrap_or_default();
        for (id, _, at_us) in after.timers() {
            if !known.contains(&id) {
                let delay = at_us.saturating_sub(after.now_us());
                self.due_us.insert(id, self.now_us + delay);
            }
        }
        let pending: BTreeSet<u64> = after.timers().map(|(id, ..)| id).collect();
        self.due_us.retain(|id, _| pending.contains(id));
    }

    /// Moves on for a step that is not a timer, leaving room for `steps_left` more before the
    /// next timer is due.
    fn advance(&mut self, steps_left: u64) -> Option<u64> {
        let next_due = self.due_us.values().min().copied().unwrap_or(u64::MAX);
        let room = next_due.saturating_sub(self.now_us);
        let step = STEP_US.min(room / (steps_left + 1));
        if step == 0 {
            return None;
        }
        self.now_us += step;
        Some(self.now_us)
    }
}

fn schedule<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    counterexample: &Counterexample,
) -> Result<Schedule, ReplayError> {
    let explorer = &*model.explorer;
    let path = &counterexample.path;
    let mut state = model
        .init_states()
        .into_iter()
        .next()
        .expect("one initial state");
    let mut clock = Clock {
        now_us: 0,
        due_us: BTreeMap::new(),
    };
    clock.learn_timers(None, model.system_of(&state));
    let mut sent: BTreeMap<u64, Sent> = (0..model.system_of(&state).messages_sent())
        .map(|number| (number, Sent::default()))
        .collect();
    let mut ops = Vec::new();
    let mut coins = Vec::new();
    let mut connection_drops: Vec<ConnectionDrop> = Vec::new();
    for (i, action) in path.iter().enumerate() {
        let step = i + 1;
        let not_in_model = || ReplayError::NotInModel {
            step,
            action: format!("{action:?}"),
        };
        let mut offered = Vec::new();
        model.actions(&state, &mut offered);
        if !offered.contains(action) {
            return Err(not_in_model());
        }
        let next = model.next_state(&state, *action).ok_or_else(not_in_model)?;
        let (described, _) = describe_action(
            model,
            model.system_of(&state),
            model.system_of(&next),
            action,
        );
        if counterexample.actions.get(i) != Some(&described) {
            return Err(not_in_model());
        }
        let before = model.system_of(&state);
        // Steps before the next timer (or the end, with the leftovers) share the room it leaves.
        let steps_left = path[i + 1..]
            .iter()
            .take_while(|a| **a != ModelAction::Fire)
            .count() as u64
            + 4;
        let unschedulable = || ReplayError::Unschedulable {
            step,
            action: format!("{action:?}"),
        };
        match *action {
            ModelAction::Fire => {
                let id = before.next_timer_id().ok_or_else(not_in_model)?;
                let due_us = clock.due_us[&id];
                if due_us <= clock.now_us && clock.now_us > 0 {
                    return Err(unschedulable());
                }
                clock.now_us = due_us;
                let (_, effect) = before.fire(explorer, 0).ok_or_else(not_in_model)?;
                coins.extend((0..effect.flips).map(|_| false));
            }
            ModelAction::Write { replica, choice } => {
                let at_us = clock.advance(steps_left).ok_or_else(unschedulable)?;
                let intent = &model.write_choices(before, replica)[choice as usize];
                ops.push(TimedOp::of_intent(
                    SimDuration::from_us(at_us),
                    replica,
                    intent,
                ));
            }
            ModelAction::Deliver { index, coins: bits } => {
                let at_us = clock.advance(steps_left).ok_or_else(unschedulable)?;
                let number = before.in_flight()[index as usize].number;
                let copy = sent.entry(number).or_default();
                if copy.delivered_us.len() == 2 {
                    return Err(ReplayError::TooManyCopies {
                        step,
                        action: format!("{action:?}"),
                    });
                }
                copy.delivered_us.push(at_us);
                let (_, effect) = before.deliver(explorer, index as usize, u64::from(bits));
                coins.extend((0..effect.flips).map(|f| f < 32 && bits >> f & 1 == 1));
            }
            ModelAction::Drop { index } => {
                clock.advance(steps_left).ok_or_else(unschedulable)?;
                let number = before.in_flight()[index as usize].number;
                sent.entry(number).or_default().dropped = true;
            }
            ModelAction::DropConnection { a, b } => {
                let at_us = clock.advance(steps_left).ok_or_else(unschedulable)?;
                for flying in before.in_flight() {
                    if (flying.from.min(flying.to), flying.from.max(flying.to)) == (a, b) {
                        sent.entry(flying.number).or_default().lost_at_us = Some(at_us);
                    }
                }
                connection_drops.push(ConnectionDrop {
                    nodes: [a, b],
                    at_us,
                    reconnect_us: None,
                });
                let (_, effect) = before.drop_connection(explorer, a, b);
                coins.extend((0..effect.flips).map(|_| false));
            }
            ModelAction::Reconnect { a, b } => {
                let at_us = clock.advance(steps_left).ok_or_else(unschedulable)?;
                let open = connection_drops
                    .iter_mut()
                    .rev()
                    .find(|d| d.nodes == [a, b] && d.reconnect_us.is_none())
                    .ok_or_else(not_in_model)?;
                open.reconnect_us = Some(at_us);
                let (_, effect) = before.reconnect(explorer, a, b);
                coins.extend((0..effect.flips).map(|_| false));
            }
        }
        let flying_after: BTreeSet<u64> = model
            .system_of(&next)
            .in_flight()
            .iter()
            .map(|m| m.number)
            .collect();
        for number in before.messages_sent()..model.system_of(&next).messages_sent() {
            let copy = sent.entry(number).or_default();
            copy.sent_us = clock.now_us;
            // Sent by this step, yet not in flight after it: lost at once on a connection that
            // was down (or, where the network keeps a set, held as one copy of an equal
            // message, which the fates below drop all the same).
            copy.dropped |= !flying_after.contains(&number);
        }
        clock.learn_timers(Some(before), model.system_of(&next));
        state = next;
    }
    check_violation(model, counterexample, &state)?;
    let mut schedule = fates_of(
        explorer.spec().flight,
        model.system_of(&state),
        sent,
        clock.now_us,
        ops,
        coins,
    );
    schedule.connection_drops = connection_drops;
    Ok(schedule)
}

/// The path's last state violates the property it names.
fn check_violation<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    counterexample: &Counterexample,
    last: &<SeamModel<C, P> as Model>::State,
) -> Result<(), ReplayError> {
    let no_violation = || ReplayError::NoViolation {
        property: counterexample.property.clone(),
    };
    let property = model
        .properties()
        .into_iter()
        .find(|p| p.name == counterexample.property && p.expectation == Expectation::Always)
        .ok_or_else(no_violation)?;
    if (property.condition)(model, last) {
        return Err(no_violation());
    }
    Ok(())
}

/// Every message's scripted fate: as the path treated it, and after it for what it left in
/// flight.
fn fates_of<C: CheckedCrdt, P: CheckedProtocol<C>>(
    flight: Flight,
    last: &System<C, P>,
    sent: BTreeMap<u64, Sent>,
    end_us: u64,
    ops: Vec<TimedOp>,
    coins: Vec<bool>,
) -> Schedule {
    let still_flying: BTreeSet<u64> = last.in_flight().iter().map(|m| m.number).collect();
    let mut fates = Vec::new();
    let mut leftovers = 0;
    for (number, copy) in &sent {
        let after = |at_us: u64| SimDuration::from_us(at_us - copy.sent_us);
        let fate = match copy.delivered_us.as_slice() {
            // Due just after its connection dropped, which netsim loses as the model did.
            [] if let Some(lost_us) = copy.lost_at_us => Fate::Deliver {
                after: after(lost_us + 1),
            },
            [] if copy.dropped => Fate::Drop,
            // Sent, yet never in flight: the network held it as one copy of an equal message.
            [] if flight == Flight::Set && !still_flying.contains(number) => Fate::Drop,
            [] => {
                leftovers += 1;
                Fate::Deliver {
                    after: after(end_us + leftovers * STEP_US),
                }
            }
            [first] => Fate::Deliver {
                after: after(*first),
            },
            [first, again, ..] => Fate::Duplicate {
                after: after(*first),
                again: after(*again),
            },
        };
        fates.push(ScriptedFate {
            message: *number,
            fate,
        });
    }
    Schedule {
        ops,
        fates,
        coins,
        end_us,
        leftovers,
        connection_drops: Vec::new(),
    }
}
