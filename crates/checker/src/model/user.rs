//! Model checking a user's CRDT and sync protocol from `cargo test`.
//!
//! ```no_run
//! use converge_checker::model::{ModelCheck, NetworkKind};
//! use converge_crdt::{LwwGrid, LwwGridConfig};
//! use converge_netsim::protocols::OpBroadcast;
//!
//! let grid = LwwGridConfig { rows: 1, cols: 2, ..Default::default() };
//! ModelCheck::new(OpBroadcast, move |_| LwwGrid::new(grid))
//!     .replicas(3)
//!     .network(NetworkKind::Reordering)
//!     .assert_passes();
//! ```
//!
//! The protocol's node states, messages and timers must be `Clone` (messages excepted), `Hash`,
//! `Debug`, `Send` and `Sync`, and the CRDT and its ops `Hash`: the checker fingerprints every
//! state it meets (see [`CheckedProtocol`], [`CheckedCrdt`]).

use std::any::type_name;
use std::fmt::Debug;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use converge_crdt::{OpCrdt, ReplicaId, StateCrdt, WorkloadIntent};
use converge_netsim::explore::{ExploreSpec, Explorer};
use converge_netsim::protocol::Protocol;
use converge_netsim::{CrdtSpec, ProtocolSpec, Scenario, Topology, UserProtocol};

use super::replay::{base_scenario, scripted};
use super::symmetry::USER_NOTE;
use super::system::{CheckedCrdt, CheckedProtocol, Mode, SeamModel, Workload};
use super::{
    check_model, connection_drops_of, flight_of, intents, validate, CheckConfig, CheckError,
    CheckReport, Counterexample, NetworkKind, ReplayError, Symmetry, ValueChoice, Verdict,
};
use crate::judge::{judge_with, RunReport};

/// An exhaustive check of a user's CRDT under a protocol (a user's own or a built-in one), built
/// step by step; every setting has a default.
pub struct ModelCheck<C: OpCrdt, P> {
    protocol: P,
    make: Arc<dyn Fn(ReplicaId) -> C + Send + Sync>,
    config: CheckConfig,
    options: ProtocolSpec,
    workload: Option<Workload<C::Intent>>,
    coin_flips: u32,
    in_flight_max: usize,
    link_max: usize,
}

impl<C: CheckedCrdt, P: CheckedProtocol<C> + Clone> ModelCheck<C, P> {
    /// `protocol` over replicas built by `make`. Defaults: 3 replicas, 1 write each (write `k`
    /// of replica `r` puts value `r + 1` under key `k % 2`), a reliable network (one connection
    /// drop where the network is [`NetworkKind::Connections`]), the mesh with the `[protocol]`
    /// defaults, no coins, at most 12 messages in flight and 4 on one link, one thread, 60 s.
    pub fn new(protocol: P, make: impl Fn(ReplicaId) -> C + Send + Sync + 'static) -> Self {
        ModelCheck {
            protocol,
            make: Arc::new(make),
            config: CheckConfig::default(),
            options: ProtocolSpec::default(),
            workload: None,
            coin_flips: 0,
            in_flight_max: 12,
            link_max: 4,
        }
    }

    /// Replicas, 2 to 4.
    pub fn replicas(mut self, replicas: u32) -> Self {
        self.config.replicas = replicas;
        self
    }

    /// Writes each replica issues, 1 to 3.
    pub fn writes_per_replica(mut self, writes: u32) -> Self {
        self.config.writes_per_replica = writes;
        self
    }

    /// The keys of the default workload (write `k` goes to key `k % keys`), 1 to 4.
    pub fn keys(mut self, keys: u32) -> Self {
        self.config.keys = keys;
        self
    }

    /// The values of the default workload: each replica its own, or any of `1..=n`.
    pub fn values(mut self, values: ValueChoice) -> Self {
        self.config.values = values;
        self
    }

    /// What replica `r`'s `k`-th write may be: every intent returned is explored.
    pub fn writes(
        mut self,
        choices: impl Fn(ReplicaId, u32) -> Vec<C::Intent> + Send + Sync + 'static,
    ) -> Self {
        self.workload = Some(Arc::new(choices));
        self
    }

    pub fn network(mut self, network: NetworkKind) -> Self {
        self.config.network = network;
        self
    }

    /// The most messages a lossy network loses, 0 to 3.
    pub fn drops(mut self, drops: u32) -> Self {
        self.config.drops = drops;
        self
    }

    /// On [`NetworkKind::Connections`]: how many times a path may drop a connection, 0 to 3
    /// (default 1). A drop loses what is in flight on the connection both ways and tells both
    /// ends ([`Protocol::on_disconnect`]); the model then explores the reconnect, which tells
    /// both ends again ([`Protocol::on_connect`]), at every point after it.
    pub fn connection_drops(mut self, drops: u32) -> Self {
        self.config.connection_drops = drops;
        self
    }

    pub fn topology(mut self, topology: Topology) -> Self {
        self.options.topology = topology;
        self
    }

    /// The `[protocol]` options the protocol reads ([`converge_netsim::protocol::Ctx::options`]).
    pub fn options(mut self, options: ProtocolSpec) -> Self {
        self.options = options;
        self
    }

    /// How many coins one step may flip (a random tie-break): each pattern is explored.
    pub fn coin_flips(mut self, flips: u32) -> Self {
        self.coin_flips = flips.min(8);
        self
    }

    /// The most messages in flight at once, and on one link; steps past them are not taken
    /// (the report says so).
    pub fn in_flight_max(mut self, total: usize, per_link: usize) -> Self {
        self.in_flight_max = total;
        self.link_max = per_link;
        self
    }

    pub fn threads(mut self, threads: u32) -> Self {
        self.config.threads = threads;
        self
    }

    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.config.timeout_ms = timeout_ms;
        self
    }

    /// The most actions on any explored path; a run that reaches it is inconclusive.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.config.max_depth = Some(depth);
        self
    }

    fn model(&self) -> SeamModel<C, P> {
        let config = self.config;
        let spec = ExploreSpec {
            flight: flight_of(config.network),
            in_flight_max: self.in_flight_max,
            link_max: self.link_max,
            ..ExploreSpec::new(config.replicas, self.options, config.writes_per_replica)
        };
        let make = Arc::clone(&self.make);
        let workload = self
            .workload
            .clone()
            .unwrap_or_else(|| Arc::new(move |replica, k| intents(&config, replica, k, false)));
        let lossy = matches!(
            config.network,
            NetworkKind::Lossy | NetworkKind::LossyDuplicating
        );
        SeamModel {
            explorer: Arc::new(Explorer::new(spec, self.protocol.clone(), move |r| make(r))),
            choices: super::system::choice_counts(&*workload, &spec),
            workload,
            drops: if lossy { config.drops } else { 0 },
            connection_drops: connection_drops_of(&config),
            coin_bits: self.coin_flips,
            mode: Mode::Verify,
            deadline: None,
            pruned: Arc::new(AtomicBool::new(false)),
            describe: Arc::new(|_, message| format!("{message:?}")),
            view: Arc::new(|crdt: &C| format!("{:?}", StateCrdt::view(crdt))),
            // A user's handler may read other nodes (peek, statuses) or draw from the stream.
            local_handlers: false,
            identity: super::system::next_identity(),
            symmetry: None,
            memo: Default::default(),
            run: 0,
        }
    }

    /// What was checked, in words: the type, the protocol and the topology.
    fn subject(&self) -> String {
        format!(
            "{} under {} over {}",
            short_type_name::<C>(),
            Protocol::<C>::name(&self.protocol),
            format!("{:?}", self.options.topology).to_lowercase()
        )
    }

    /// Explores every interleaving; see [`super::check`] for the properties and verdicts.
    pub fn run(&self) -> Result<CheckReport, CheckError> {
        validate(&self.config)?;
        if self.workload.is_none() && !C::Intent::has_key_value_form() {
            return Err(CheckError::OwnIntents {
                type_name: std::any::type_name::<C>(),
            });
        }
        let mut report = check_model(&self.config, &self.model());
        report.subject = Some(self.subject());
        report.symmetry_note =
            (self.config.symmetry == Symmetry::On).then(|| USER_NOTE.to_string());
        Ok(report)
    }

    /// The scripted scenario that replays `counterexample` in the simulator (run it with this
    /// protocol and factory: [`ModelCheck::replay`] does).
    pub fn scenario_of(&self, counterexample: &Counterexample) -> Result<Scenario, ReplayError> {
        validate(&self.config)?;
        let mut base = base_scenario(&self.config, counterexample, CrdtSpec::default());
        base.name = format!("check-{}", self.subject()).replace(' ', "-");
        base.protocol = self.options;
        scripted(&self.model(), counterexample, base)
    }

    /// Replays `counterexample` in the simulator, with every oracle on: the run's verdict is the
    /// violation the model checker found.
    pub fn replay(&self, counterexample: &Counterexample) -> Result<RunReport, ReplayError> {
        let scenario = self.scenario_of(counterexample)?;
        let runner = UserProtocol(self.protocol.clone());
        let make = |r| (self.make)(r);
        judge_with(&scenario, 0, &runner, &make, None)
            .map(|judged| judged.report)
            .map_err(|e| ReplayError::Scenario(e.to_string()))
    }

    /// Panics unless every reachable state is safe and a conflict occurs; the message holds the
    /// shortest counterexample, the final views and what the simulator's replay concluded.
    #[track_caller]
    pub fn assert_passes(&self) {
        let report = match self.run() {
            Ok(report) => report,
            Err(error) => panic!("model check of {} refused: {error}", self.subject()),
        };
        if report.verdict == Verdict::Pass {
            return;
        }
        panic!("{}", self.explain(&report));
    }

    /// The report as a person reads it: verdict, counterexample, views and replay.
    pub fn explain(&self, report: &CheckReport) -> String {
        let mut text = format!(
            "model check of {}: {:?} ({} unique states)",
            self.subject(),
            report.verdict,
            report.unique_states
        );
        if let Some(note) = &report.bound_note {
            text.push_str(&format!("\n{note}"));
        }
        if let Some(counterexample) = &report.counterexample {
            text.push_str(&format!(
                "\ncounterexample, {} steps{}:",
                counterexample.depth,
                if counterexample.minimal {
                    " (shortest)"
                } else {
                    ""
                }
            ));
            for (i, step) in counterexample.steps.iter().enumerate() {
                text.push_str(&format!("\n  {}. {step}", i + 1));
            }
            for view in &counterexample.final_views {
                text.push_str(&format!("\n  {view}"));
            }
            if let Some(liveness) = &counterexample.liveness {
                text.push_str(&format!("\n{liveness}"));
            }
            match self.replay(counterexample) {
                Ok(run) => text.push_str(&format!(
                    "\nreplayed in the simulator: verdict {:?}",
                    run.verdict
                )),
                Err(error) => text.push_str(&format!("\nnot replayed in the simulator: {error}")),
            }
        }
        text
    }
}

/// A type's name without its module path: `LwwGrid`, `Counter<u64>`.
fn short_type_name<T>() -> String {
    let full = type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    let rest = &full[head.len()..];
    format!("{}{rest}", head.rsplit("::").next().unwrap_or(head))
}

impl<C: OpCrdt, P: Debug> Debug for ModelCheck<C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCheck")
            .field("protocol", &self.protocol)
            .field("config", &self.config)
            .field("options", &self.options)
            .finish()
    }
}
