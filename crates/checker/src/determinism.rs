//! The determinism self-check: a seed run twice in one process must make the same decisions and
//! reach the same states, event for event. The trace hash covers the decisions (network events
//! and coin flips); a *state trail* watches the states: after every event it folds a fingerprint
//! of each replica the event touched (the type's view digest, or a hash of its rendered view
//! where the type offers none). A user type whose merge depends on hash-map iteration order, a
//! clock or a global counter gives two different trails, and the check names the first event
//! where they part.

use converge_crdt::{digest_round, OpCrdt, StateCrdt};
use converge_netsim::{
    BuiltinCrdt, CrdtVisitor, Observer, Replicas, Runner, Scenario, ScenarioError,
    ScenarioProtocol, TraceEvent, World,
};

/// Events whose fingerprints are kept one by one, to name the first that differs; beyond them
/// only the running trail is compared.
pub const TRAIL_EVENTS_KEPT_MAX: usize = 1 << 20;

/// Fingerprints every touched replica's state after every event.
struct StateTrail {
    per_event: Vec<u64>,
    trail: u64,
}

impl<C: OpCrdt> Observer<C> for StateTrail {
    fn on_event(&mut self, _event: &TraceEvent, world: &World<'_, C>) {
        let mut digest = 0;
        for replica in world.touched {
            let state = &world.replicas[*replica as usize].crdt;
            digest = digest_round(
                digest_round(digest, u64::from(*replica)),
                fingerprint(state),
            );
        }
        self.trail = digest_round(self.trail, digest);
        if self.per_event.len() < TRAIL_EVENTS_KEPT_MAX {
            self.per_event.push(digest);
        }
    }
}

/// A state's fingerprint: its view digest, or a hash of its view rendered as JSON.
fn fingerprint<C: StateCrdt>(state: &C) -> u64 {
    if let Some(digest) = state.view_digest() {
        return digest;
    }
    let rendered = serde_json::to_vec(&state.view()).unwrap_or_default();
    rendered
        .chunks(8)
        .fold(digest_round(0, rendered.len() as u64), |digest, chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            digest_round(digest, u64::from_le_bytes(word))
        })
}

/// How two runs of one seed differed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nondeterminism {
    pub seed: u64,
    /// What differed, in a sentence.
    pub detail: String,
}

impl std::fmt::Display for Nondeterminism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} is not deterministic: {}",
            self.seed, self.detail
        )
    }
}

/// Runs `seed` twice under `protocol` and compares the decisions and the states; `None` when
/// both runs agree.
pub fn check_determinism<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    protocol: &dyn Runner<C>,
    make: &dyn Replicas<C>,
) -> Result<Option<Nondeterminism>, ScenarioError> {
    let run = || -> Result<(u64, u64, StateTrail), ScenarioError> {
        let mut trail = StateTrail {
            per_event: Vec::new(),
            trail: 0,
        };
        let outcome = protocol.run(scenario, seed, make, &mut trail)?;
        Ok((outcome.trace_hash, outcome.events, trail))
    };
    let (hash_a, events_a, trail_a) = run()?;
    let (hash_b, events_b, trail_b) = run()?;
    let parted = trail_a
        .per_event
        .iter()
        .zip(&trail_b.per_event)
        .position(|(a, b)| a != b);
    let detail = match parted {
        Some(event) => format!(
            "the replicas event {event} touched hold different states in two runs of the same \
             seed (a merge, apply or view that depends on something besides its inputs, such as \
             hash-map iteration order, a clock or a global counter)"
        ),
        None if hash_a != hash_b => format!(
            "two runs of the same seed made different decisions (trace hashes {hash_a:016x} and \
             {hash_b:016x}, {events_a} and {events_b} events)"
        ),
        None if trail_a.trail != trail_b.trail => {
            "the replicas hold different states in two runs of the same seed, after the events \
             whose states were kept one by one"
                .to_string()
        }
        None => return Ok(None),
    };
    Ok(Some(Nondeterminism { seed, detail }))
}

/// [`check_determinism`] for a scenario of one of our CRDTs under its built-in protocol, as
/// `converge run --check-determinism` runs it.
pub fn check_builtin_determinism(
    scenario: &Scenario,
    seed: u64,
) -> Result<Option<Nondeterminism>, ScenarioError> {
    struct Check<'a> {
        scenario: &'a Scenario,
        seed: u64,
    }
    impl CrdtVisitor for Check<'_> {
        type Output = Result<Option<Nondeterminism>, ScenarioError>;
        fn visit<C: BuiltinCrdt>(self, make: impl Replicas<C> + Copy) -> Self::Output {
            check_determinism(self.scenario, self.seed, &ScenarioProtocol, &make)
        }
    }
    scenario.crdt.dispatch(Check { scenario, seed })
}
