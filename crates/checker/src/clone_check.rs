//! The shallow-`Clone` probe: converge copies replica states (every state message carries a copy,
//! the convergence watch keeps copies to compare with) and relies on each copy being independent
//! of the state it was copied from. A type whose `Clone` hands out a shared handle (as some
//! document libraries' `clone` does) lets a received "copy" keep changing with its sender, so a
//! replica ends up holding updates its delivered set does not list, and the oracles raise false
//! alarms that name no bug of the type's merge.
//!
//! The probe catches the common case at a cost that does not grow with the run: at the touching
//! events numbered 1, 2, 4, 8, ... (so at most 64 times in any run, about 20 in a long one), it
//! copies the first live touched replica's state twice (once with `clone`, once with
//! `clone_from` into a copy it keeps), applies one write to each copy (a put of `key 0` prepared
//! by the copy itself, stamped above every stamp time it holds) and checks that the replica's own
//! view did not move. A view that moved while only a copy was written to is proof that the copy
//! shares the replica's state: the probe never raises a false alarm. It can miss a type whose
//! copies share only what key 0 does not reach, or whose view a put of key 0 leaves as it was.
//!
//! It runs in debug builds only (`cfg!(debug_assertions)` of this crate, on in `cargo test`
//! unless `--release`), and never draws from the run's random streams, so a type whose `Clone` is
//! deep runs exactly as without it: same decisions, same trace hash. A shallow copy fails the run
//! with a panic that says so, which the simulator turns into verdict `panicked`.
//!
//! [`check_clone`] is the same probe on a fresh state, before any run, in every build:
//! `converge::verify::Verify` calls it first, so that a state that is a handle as a whole (the
//! common case) is named once rather than as a failing run.

use converge_crdt::{FixedCoin, OpCrdt, ReplicaId, Stamp, StateCrdt, WorkloadIntent};
use converge_netsim::{IntentDraw, Observer, Replicas, Status, TraceEvent, World};

/// Watches a run for copies that share state with what they were copied from.
pub struct CloneProbe<C> {
    enabled: bool,
    /// How many events so far touched a replica; the probe looks at powers of two.
    touching_events: u64,
    /// The last probe's first copy, which the next probe writes over with `clone_from`.
    kept: Option<C>,
    /// The value the probe's write puts.
    value: u64,
}

impl<C: OpCrdt> CloneProbe<C> {
    /// The probe as judging attaches it: on in debug builds, off otherwise.
    pub fn new() -> Self {
        CloneProbe {
            enabled: cfg!(debug_assertions),
            touching_events: 0,
            kept: None,
            value: 1,
        }
    }

    /// The probe on whatever the build, for a test of a type's `Clone` in release builds.
    pub fn always() -> Self {
        CloneProbe {
            enabled: true,
            ..Self::new()
        }
    }

    /// Writes to a copy of `state` (replica `replica`'s) and panics if `state`'s view moves.
    /// A type whose intents are its own is not probed during a run: no intent of its own is
    /// known to be valid in any state (a delete at a position the copy lacks would panic in the
    /// type's code, a false alarm); [`check_clone`] probes it before the runs, with intents its
    /// generator draws for a fresh state.
    fn probe(&mut self, replica: ReplicaId, state: &C) {
        let mut kept = self.kept.take().unwrap_or_else(|| state.clone());
        let mut next = |_: &C| probe_intent::<C>(&mut self.value, |_| None);
        if let Err(shallow) = probe_copies(replica, state, &mut kept, &mut next) {
            panic!("{shallow}");
        }
        self.kept = Some(kept);
    }
}

/// Writes to a copy of `state` made with `clone`, then to `kept` written over with `clone_from`,
/// and tells whether `state`'s view stayed where it was. `next` gives the intent to write to a
/// copy; with none, there is nothing to probe with.
fn probe_copies<C: OpCrdt>(
    replica: ReplicaId,
    state: &C,
    kept: &mut C,
    next: &mut dyn FnMut(&C) -> Option<C::Intent>,
) -> Result<(), ShallowClone> {
    let before = state.view();
    let mut copy = state.clone();
    let Some(intent) = next(&copy) else {
        return Ok(());
    };
    write(&mut copy, replica, &intent);
    unmoved(state, &before, replica, "clone")?;
    kept.clone_from(state);
    if let Some(intent) = next(kept) {
        write(kept, replica, &intent);
    }
    unmoved(state, &before, replica, "clone_from")
}

/// One write of `intent` to `copy`, prepared by the copy itself as replica `replica` would issue
/// it.
fn write<C: OpCrdt>(copy: &mut C, replica: ReplicaId, intent: &C::Intent) {
    let stamp = Stamp::new(copy.time_max().saturating_add(1), replica);
    let op = copy.prepare(intent, stamp);
    copy.apply(&op, &mut FixedCoin(false));
}

/// The probe's next intent: a put of `value` under key 0 where the type's intents have a
/// key/value form, otherwise the one `own` gives (an intent of the type's own). A different value
/// each time, so that the write changes a view that already shows the last probe's value.
fn probe_intent<C: OpCrdt>(
    value: &mut u64,
    own: impl FnOnce(u64) -> Option<C::Intent>,
) -> Option<C::Intent> {
    let probed = *value;
    *value = value.wrapping_add(1);
    C::Intent::from_key_value(0, Some(probed)).or_else(|| own(probed))
}

/// The probe before any run: replica 0's fresh state after one write, copied and written to.
/// This catches the common case (a state that is a handle as a whole) once, before a run, with
/// one clear message instead of a failing run per seed and per shrinking step. It runs in every
/// build: it costs two copies and three writes per verification.
///
/// A type whose intents are its own is probed with intents its generator draws; without a
/// generator there is nothing to write, and the probe passes.
pub fn check_clone<C: OpCrdt>(make: &dyn Replicas<C>) -> Result<(), ShallowClone> {
    let mut value = 1;
    let mut next = |state: &C| {
        probe_intent::<C>(&mut value, |seed| {
            let draw = IntentDraw {
                seed,
                simplified: &[],
            };
            make.draws_intents()
                .then(|| make.draw_intent(state, &draw))
                .flatten()
        })
    };
    let mut state = make.make(0, 0);
    let Some(intent) = next(&state) else {
        return Ok(());
    };
    write(&mut state, 0, &intent);
    let mut kept = make.make(0, 0);
    probe_copies(0, &state, &mut kept, &mut next)
}

/// What the probe found: a copy that shares its original's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{type_name}'s {SHALLOW_CLONE}: a write to a copy of replica {replica}'s state (made with \
     {how}) changed replica {replica}'s own view. converge copies states into messages and relies \
     on each copy being independent; a shared handle makes replicas hold updates they never \
     received, and the verdicts would be false alarms. Make Clone copy the whole state (see \
     \"Clone must copy\" in docs/verify-your-crdt.md)."
)]
pub struct ShallowClone {
    pub type_name: &'static str,
    pub replica: ReplicaId,
    /// `clone` or `clone_from`.
    pub how: &'static str,
}

/// The words every report of a shallow copy carries, so that a run that failed on one can be
/// told from a run that found a bug.
pub const SHALLOW_CLONE: &str = "Clone is not a deep copy";

fn unmoved<C: StateCrdt>(
    state: &C,
    before: &C::View,
    replica: ReplicaId,
    how: &'static str,
) -> Result<(), ShallowClone> {
    if state.view() == *before {
        return Ok(());
    }
    Err(ShallowClone {
        type_name: std::any::type_name::<C>(),
        replica,
        how,
    })
}

/// The probe as judging attaches it: [`CloneProbe`] in debug builds, and in release builds an
/// observer that is not there at all. A release-build `CloneProbe` would only return at once, but
/// it is still one more call and one more field on every event of every judged run, which
/// measured at 1.3% of a judged run's instructions.
#[cfg(debug_assertions)]
pub(crate) fn judging_probe<C: OpCrdt>() -> CloneProbe<C> {
    CloneProbe::new()
}

/// See the debug-build version: in release builds judging attaches no probe. It keeps the type
/// parameter so that callers are written once for both builds.
#[cfg(not(debug_assertions))]
#[allow(clippy::extra_unused_type_parameters)]
pub(crate) fn judging_probe<C: OpCrdt>() -> converge_netsim::NoObserver {
    converge_netsim::NoObserver
}

impl<C: OpCrdt> Default for CloneProbe<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: OpCrdt> Observer<C> for CloneProbe<C> {
    fn on_event(&mut self, _event: &TraceEvent, world: &World<'_, C>) {
        if !self.enabled || world.touched.is_empty() {
            return;
        }
        self.touching_events += 1;
        if !self.touching_events.is_power_of_two() {
            return;
        }
        // A touched node may be the relay server, which is no replica.
        let live = world.touched.iter().find_map(|r| {
            world
                .replicas
                .get(*r as usize)
                .filter(|replica| replica.status == Status::Up)
        });
        if let Some(replica) = live {
            self.probe(replica.id, &replica.crdt);
        }
    }
}
