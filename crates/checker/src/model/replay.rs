//! From a model-checker counterexample to a scripted netsim scenario that replays it.
//!
//! A counterexample is a list of actions: writes, deliveries (with the coin flips of the random
//! tie-break), drops and anti-entropy exchanges. [`Counterexample::to_scenario`] first replays
//! those actions through the model itself, from the initial state, to recover the exact messages
//! each step sends and delivers (a counterexample names a state message only by the updates it
//! carries). It then gives every step its own instant of virtual time, [`STEP_US`] after the one
//! before, and writes the path down as a scripted scenario, which netsim runs without drawing a
//! single random number:
//!
//! - each write becomes an explicit operation at its step's time on its origin replica;
//! - each message gets a scripted fate: delivered at the time of the step that delivers it (a
//!   second delivery of the same message, which duplicating networks allow, becomes a duplicate
//!   fate), dropped if the path drops it, and delivered after the path's last step if the path
//!   leaves it in flight;
//! - the coin flips of the path's deliveries, in order, become the script's coins.
//!
//! Netsim numbers messages in the order replicas send them, and its mesh sends a write's messages
//! in receiver order, as the model does, so the `k`-th message the path sends is message `k` of
//! the replay.
//!
//! # Where the model and netsim differ
//!
//! - **Networks.** The model's network kinds restrict which orders and copies are possible; netsim's
//!   scripted mode can realize any of them, so a scripted replay simply fixes the one the path
//!   took. A message the model delivers more than twice (possible on duplicating networks, where a
//!   message stays in flight) has no scripted fate: [`ReplayError::TooManyCopies`].
//! - **Anti-entropy.** The model lets any replica send its state to any one peer at any moment;
//!   netsim runs anti-entropy as rounds on a timer, each to `fanout` peers. The replay uses
//!   netsim's anti-entropy with the fanout set to every peer and rounds every
//!   [`ANTI_ENTROPY_INTERVAL_US`]; it asks netsim for the round schedule once (a probe run of
//!   the same scripted scenario without writes: in scripted mode the schedule does not depend on
//!   the seed), places each exchange of the path at the next round of its sender, and scripts
//!   every other message of the rounds before the path ends as a drop. Those drops are messages
//!   the model never sent, so they count in the replay's drop total although the path dropped
//!   nothing. Rounds after the path ends are delivered normally.
//! - **After the path.** The path ends at the first violating state. For strong convergence the
//!   violation has happened and netsim's verdict (diverges) cannot be undone. For "quiescent
//!   implies converged" the last state is quiescent: no message in flight and no exchange would
//!   change any replica, whatever the coins, so what netsim delivers after the path changes
//!   nothing and the run ends not converged.
//!
//! The replay expects convergence (the default `[expect]`), so running it reports the failure
//! the checker found and exits 1.

use std::collections::BTreeSet;

use converge_crdt::{ClockKind, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, ReplicaId};
use converge_netsim::{
    CrdtSpec, EventKind, Fate, NoObserver, ProtocolKind, ProtocolSpec, Scenario, Script,
    ScriptedFate, SimDuration, TimedOp, Topology, WorkloadSpec,
};
use serde::Serialize;
use stateright::{Expectation, Model};

use super::machine::{ConvergeModel, Mode, ModelAction, ModelSpec};
use super::state::{Flight, Message, ModelState};
use super::{
    describe_action, validate, CheckConfig, CheckError, Counterexample, CounterexampleAction,
    ModelCrdt, ModelProtocol, NetworkKind, ValueChoice,
};

/// Virtual time between two consecutive steps of a counterexample in its replay.
pub const STEP_US: u64 = 1_000;

/// The period of netsim's anti-entropy rounds in the replay of an anti-entropy counterexample.
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
    #[error("netsim's anti-entropy schedule has no round of r{from} for step {step}")]
    NoRound { step: usize, from: u32 },
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
        let spec = validate(config)?;
        let model = ConvergeModel::new(spec, Mode::Verify);
        let path = model_path(&model, self)?;
        let mut scenario = base_scenario(config, &spec, self);
        let rounds = if spec.protocol == ModelProtocol::AntiEntropy {
            anti_entropy_rounds(&scenario, path.len())?
        } else {
            Vec::new()
        };
        let schedule = schedule(&model, &path, &rounds)?;
        scenario.duration = SimDuration::from_us(schedule.end_us + STEP_US);
        scenario.settle = SimDuration::from_us(REPLAY_SETTLE_US + schedule.leftovers * STEP_US);
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
}

/// The counterexample's actions replayed through the model: each step's state before it and its
/// action. A counterexample names state messages by the updates they carry, which can fit more
/// than one message in flight, so this searches (depth-first, in the model's action order) for a
/// path whose steps all match and whose last state violates the property.
fn model_path(
    model: &ConvergeModel,
    counterexample: &Counterexample,
) -> Result<Vec<(ModelState, ModelAction)>, ReplayError> {
    let property = model
        .properties()
        .into_iter()
        .find(|p| p.name == counterexample.property && p.expectation == Expectation::Always)
        .ok_or_else(|| ReplayError::NoViolation {
            property: counterexample.property.clone(),
        })?;
    let violates = |state: &ModelState| !(property.condition)(model, state);
    let mut search = PathSearch {
        model,
        wanted: &counterexample.actions,
        violates: &violates,
        path: Vec::new(),
        deepest: 0,
    };
    let init = model.init_states().remove(0);
    if search.extend(&init) {
        return Ok(search.path);
    }
    if search.deepest < counterexample.actions.len() {
        let step = search.deepest;
        return Err(ReplayError::NotInModel {
            step: step + 1,
            action: format!("{:?}", counterexample.actions[step]),
        });
    }
    Err(ReplayError::NoViolation {
        property: counterexample.property.clone(),
    })
}

struct PathSearch<'a> {
    model: &'a ConvergeModel,
    wanted: &'a [CounterexampleAction],
    violates: &'a dyn Fn(&ModelState) -> bool,
    path: Vec<(ModelState, ModelAction)>,
    /// The most steps matched on any branch, for the error message.
    deepest: usize,
}

impl PathSearch<'_> {
    fn extend(&mut self, state: &ModelState) -> bool {
        let done = self.path.len();
        self.deepest = self.deepest.max(done);
        let Some(wanted) = self.wanted.get(done) else {
            return (self.violates)(state);
        };
        let mut candidates = Vec::new();
        self.model.actions(state, &mut candidates);
        for action in candidates {
            if describe_action(self.model, state, &action).0 != *wanted {
                continue;
            }
            let Some(next) = self.model.next_state(state, action) else {
                continue;
            };
            self.path.push((state.clone(), action));
            if self.extend(&next) {
                return true;
            }
            self.path.pop();
        }
        false
    }
}

/// Everything but the path's ops, fates and times.
fn base_scenario(
    config: &CheckConfig,
    spec: &ModelSpec,
    counterexample: &Counterexample,
) -> Scenario {
    let replicas = u32::from(spec.replicas);
    let crdt = match spec.crdt {
        ModelCrdt::Grid { tie_break } => CrdtSpec::LwwGrid(LwwGridConfig {
            rows: 1,
            cols: u32::from(spec.keys),
            tie_break,
        }),
        ModelCrdt::Dict { bias, tie_break } => CrdtSpec::LwwDict(LwwDictConfig { bias, tie_break }),
    };
    let protocol = match spec.protocol {
        ModelProtocol::StateBroadcast => ProtocolSpec {
            kind: ProtocolKind::StateBroadcast,
            ..ProtocolSpec::default()
        },
        ModelProtocol::OpBroadcast => ProtocolSpec {
            kind: ProtocolKind::OpBroadcast,
            ..ProtocolSpec::default()
        },
        ModelProtocol::AntiEntropy => ProtocolSpec {
            kind: ProtocolKind::AntiEntropy,
            fanout: replicas - 1,
            interval: SimDuration::from_us(ANTI_ENTROPY_INTERVAL_US),
            ..ProtocolSpec::default()
        },
    };
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
        replicas,
        crdt,
        clock: ClockKind::Lamport,
        protocol: ProtocolSpec {
            topology: Topology::Mesh,
            ..protocol
        },
        workload: WorkloadSpec {
            rate: 0.0,
            keys: u32::from(spec.keys),
            values: match config.values {
                ValueChoice::Own => u64::from(spec.replicas),
                ValueChoice::AnyOf(n) => u64::from(n),
            },
            ..WorkloadSpec::default()
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
    };
    let drops = match config.network {
        NetworkKind::Lossy | NetworkKind::LossyDuplicating => format!("-{}-drops", config.drops),
        _ => String::new(),
    };
    format!(
        "{crdt}-{}-{}{drops}-{}x{}",
        kebab(&config.protocol),
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

/// One anti-entropy round of netsim's schedule: when it fires, whose it is, and the number of the
/// message it sends to each peer.
struct Round {
    at_us: u64,
    from: ReplicaId,
    sends: Vec<(ReplicaId, u64)>,
}

/// Netsim's anti-entropy rounds for `scenario`, long enough for a path of `steps` steps. Scripted
/// runs root every stream at zero and anti-entropy writes send nothing, so the rounds (their
/// times, targets and message numbers) are the same in the probe as in the replay.
fn anti_entropy_rounds(scenario: &Scenario, steps: usize) -> Result<Vec<Round>, ReplayError> {
    let mut probe = scenario.clone();
    // Each step waits at most one interval for its sender's next round.
    let horizon_us = (steps as u64 + 2) * (ANTI_ENTROPY_INTERVAL_US + STEP_US);
    probe.duration = SimDuration::from_us(horizon_us);
    probe.settle = SimDuration::from_us(0);
    probe.workload.ops.clear();
    probe.script = Some(Script::default());
    let trace = match &scenario.crdt {
        CrdtSpec::LwwGrid(grid) => {
            converge_netsim::run(&probe, 0, &|_| LwwGrid::new(*grid), &mut NoObserver)
                .map(|outcome| outcome.trace)
        }
        CrdtSpec::LwwDict(dict) => {
            converge_netsim::run(&probe, 0, &|_| LwwDict::new(*dict), &mut NoObserver)
                .map(|outcome| outcome.trace)
        }
    }
    .map_err(|e| ReplayError::Scenario(e.to_string()))?;
    let mut rounds: Vec<Round> = Vec::new();
    for event in &trace {
        if let EventKind::Send {
            from, to, message, ..
        } = event.kind
        {
            match rounds.last_mut() {
                Some(round) if round.at_us == event.at_us && round.from == from => {
                    round.sends.push((to, message));
                }
                _ => rounds.push(Round {
                    at_us: event.at_us,
                    from,
                    sends: vec![(to, message)],
                }),
            }
        }
    }
    Ok(rounds)
}

/// A message of the path, by its netsim number.
struct Sent {
    number: u64,
    message: Message,
    sent_us: u64,
    delivered_us: Vec<u64>,
    dropped: bool,
    /// Still in flight in the model (a delivery on a duplicating network leaves it there).
    in_flight: bool,
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
}

fn schedule(
    model: &ConvergeModel,
    path: &[(ModelState, ModelAction)],
    rounds: &[Round],
) -> Result<Schedule, ReplayError> {
    let keys = model.spec.keys;
    let mut now_us = 0;
    let mut next_number = 0;
    let mut sent: Vec<Sent> = Vec::new();
    let mut ops = Vec::new();
    let mut coins = Vec::new();
    for (index, (before, action)) in path.iter().enumerate() {
        let step = index + 1;
        match action {
            ModelAction::Write { replica, value } => {
                now_us += STEP_US;
                let current = before.replica(usize::from(*replica));
                ops.push(TimedOp {
                    at: SimDuration::from_us(now_us),
                    replica: u32::from(*replica),
                    key: u32::from(current.writes_done() % keys),
                    value: (*value != 0).then_some(u64::from(*value)),
                });
                for message in model.sent_by_write(before, *replica, *value) {
                    sent.push(Sent {
                        number: next_number,
                        message,
                        sent_us: now_us,
                        delivered_us: Vec::new(),
                        dropped: false,
                        in_flight: true,
                    });
                    next_number += 1;
                }
            }
            ModelAction::Deliver(message) | ModelAction::DeliverWithCoin { message, .. } => {
                now_us += STEP_US;
                let flight = before.flight;
                let copy = oldest_in_flight(&mut sent, message, step, action)?;
                if copy.delivered_us.len() == 2 {
                    return Err(ReplayError::TooManyCopies {
                        step,
                        action: format!("{action:?}"),
                    });
                }
                copy.delivered_us.push(now_us);
                // Only duplicating networks keep a delivered message in flight.
                copy.in_flight = flight == Flight::Set;
                if let ModelAction::DeliverWithCoin {
                    coins: bits, flips, ..
                } = action
                {
                    coins.extend((0..*flips).map(|i| bits & (1 << i) != 0));
                }
            }
            ModelAction::Drop(message) => {
                now_us += STEP_US;
                let copy = oldest_in_flight(&mut sent, message, step, action)?;
                copy.dropped = true;
                copy.in_flight = false;
            }
            ModelAction::Sync { from, to } => {
                let round = rounds
                    .iter()
                    .find(|r| r.at_us > now_us && r.from == u32::from(*from))
                    .ok_or(ReplayError::NoRound {
                        step,
                        from: u32::from(*from),
                    })?;
                let number = round
                    .sends
                    .iter()
                    .find(|(peer, _)| *peer == u32::from(*to))
                    .map(|(_, number)| *number)
                    .ok_or(ReplayError::NoRound {
                        step,
                        from: u32::from(*from),
                    })?;
                now_us = round.at_us;
                let message = model.sync_message(before, *from, *to).ok_or_else(|| {
                    ReplayError::NotInModel {
                        step,
                        action: format!("{action:?}"),
                    }
                })?;
                sent.push(Sent {
                    number,
                    message,
                    sent_us: now_us,
                    delivered_us: Vec::new(),
                    dropped: false,
                    in_flight: true,
                });
            }
        }
    }

    let end_us = now_us;
    let mut fates = Vec::new();
    let mut leftovers = 0;
    for copy in &sent {
        let after = |at_us: u64| SimDuration::from_us(at_us - copy.sent_us);
        let fate = match copy.delivered_us.as_slice() {
            [] if copy.dropped => Fate::Drop,
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
            message: copy.number,
            fate,
        });
    }
    // The rounds' other messages before the path ends were never sent in the model.
    let claimed: BTreeSet<u64> = sent.iter().map(|s| s.number).collect();
    for round in rounds.iter().filter(|r| r.at_us <= end_us) {
        for (_, number) in &round.sends {
            if !claimed.contains(number) {
                fates.push(ScriptedFate {
                    message: *number,
                    fate: Fate::Drop,
                });
            }
        }
    }
    fates.sort_by_key(|f| f.message);
    Ok(Schedule {
        ops,
        fates,
        coins,
        end_us,
        leftovers,
    })
}

/// The oldest netsim message still in flight that carries `message`: the head of its link on FIFO
/// networks, and one of identical copies otherwise.
fn oldest_in_flight<'a>(
    sent: &'a mut [Sent],
    message: &Message,
    step: usize,
    action: &ModelAction,
) -> Result<&'a mut Sent, ReplayError> {
    sent.iter_mut()
        .find(|s| s.in_flight && s.message == *message)
        .ok_or_else(|| ReplayError::NotInModel {
            step,
            action: format!("{action:?}"),
        })
}
