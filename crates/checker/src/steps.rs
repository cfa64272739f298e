//! A run of one of our CRDTs replayed event by event for a person to step through: after each
//! event, the replicas it touched, their status, their delivered-update count and their view as
//! JSON. It lives beside [`crate::judge`] so that the simulator is compiled once per built-in CRDT
//! for both (in a release build each crate compiles its own copy of a generic function).

use converge_crdt::{OpCrdt, ReplicaId};
use converge_netsim::{
    BuiltinCrdt, CrdtVisitor, EventKind, Observer, Replicas, Scenario, ScenarioError, Status,
    TraceEvent, World,
};

/// One replica as an event left it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaStep {
    pub replica: ReplicaId,
    pub status: Status,
    pub delivered: u32,
    pub view: serde_json::Value,
}

/// What a stepper sees of a replayed run. `on_event` returns whether to go on: a stepper holds
/// a bounded number of steps, and a long run stops once it is full.
pub trait StepWatch {
    fn on_event(&mut self, event: &TraceEvent, touched: Vec<ReplicaStep>) -> bool;
}

struct Adapter<'a> {
    watch: &'a mut dyn StepWatch,
    stopped: bool,
}

impl<C: OpCrdt> Observer<C> for Adapter<'_> {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        if self.stopped {
            return;
        }
        let mut touched: Vec<ReplicaId> = world.touched.to_vec();
        // A status change is a change to show, whether or not the simulator lists the replica.
        if let EventKind::Crash { replica }
        | EventKind::Restart { replica }
        | EventKind::Join { replica }
        | EventKind::Leave { replica } = event.kind
        {
            touched.push(replica);
        }
        touched.sort_unstable();
        touched.dedup();
        let replicas = touched
            .iter()
            .filter_map(|id| world.replicas.get(*id as usize))
            .map(|r| ReplicaStep {
                replica: r.id,
                status: r.status,
                delivered: r.delivered.len(),
                view: serde_json::to_value(r.crdt.view()).unwrap_or_default(),
            })
            .collect();
        self.stopped = !self.watch.on_event(event, replicas);
    }

    fn interrupted(&self) -> bool {
        self.stopped
    }
}

/// Replays `scenario` with `seed`, showing `watch` every event, and returns every replica as it
/// started (empty; not yet joined when it joins late).
pub fn replay_steps(
    scenario: &Scenario,
    seed: u64,
    watch: &mut dyn StepWatch,
) -> Result<Vec<ReplicaStep>, ScenarioError> {
    struct Replay<'a> {
        scenario: &'a Scenario,
        seed: u64,
        watch: &'a mut dyn StepWatch,
    }
    impl CrdtVisitor for Replay<'_> {
        type Output = Result<Vec<ReplicaStep>, ScenarioError>;
        fn visit<C: BuiltinCrdt>(self, make: impl Replicas<C> + Copy) -> Self::Output {
            replay(self.scenario, self.seed, &make, self.watch)
        }
    }
    scenario.crdt.dispatch(Replay {
        scenario,
        seed,
        watch,
    })
}

fn replay<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
    watch: &mut dyn StepWatch,
) -> Result<Vec<ReplicaStep>, ScenarioError> {
    let mut adapter = Adapter {
        watch,
        stopped: false,
    };
    converge_netsim::run(scenario, seed, make, &mut adapter)?;
    let late = |id: ReplicaId| {
        scenario.faults.iter().any(
            |f| matches!(f, converge_netsim::FaultSpec::Join { replica, .. } if *replica == id),
        )
    };
    Ok((0..scenario.replicas)
        .map(|id| ReplicaStep {
            replica: id,
            status: if late(id) {
                Status::Waiting
            } else {
                Status::Up
            },
            delivered: 0,
            view: serde_json::to_value(make.make(id, 0).view()).unwrap_or_default(),
        })
        .collect())
}
