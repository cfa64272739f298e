//! The intent oracle against a user's sequential specification over intents
//! ([`converge_netsim::Replicas::expected_view`]): every live replica's view must be what the
//! specification says of the updates that replica holds, taken in the causal order the run fixed
//! (an update after every update its origin held when it was issued), concurrent ones in stamp
//! order. The reference is built from intents, never from the type's ops, so a bug in `prepare`
//! (a stale read, a lost increment) cannot hide in it.
//!
//! The causal order needs what each origin held at each write: [`CausalOrder`] keeps a copy of
//! the origin's delivered set per write, up to [`SPECIFIED_UPDATES_MAX`] updates; a longer run
//! says that this oracle did not run instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use converge_crdt::{OpCrdt, Stamp, StateCrdt};
use converge_netsim::{Outcome, Replica, Replicas, Specified, UpdateSet};

use crate::oracles::{differs_from_reference, Violation};

/// The most updates a run may issue for the specification to be checked: the causal order keeps
/// one delivered set per update and orders each replica's updates in time quadratic in them.
pub const SPECIFIED_UPDATES_MAX: usize = 10_000;

/// What each update's origin held when it was issued, by update index.
#[derive(Default)]
pub struct CausalOrder {
    held: Vec<UpdateSet>,
    /// More updates were issued than [`SPECIFIED_UPDATES_MAX`]; nothing more is kept.
    overflowed: bool,
}

impl CausalOrder {
    /// Notes that update `index` was issued by an origin holding `held` (itself included).
    pub fn record(&mut self, index: u32, held: &UpdateSet) {
        if self.overflowed || index as usize >= SPECIFIED_UPDATES_MAX {
            self.overflowed = true;
            self.held.clear();
            return;
        }
        debug_assert_eq!(
            index as usize,
            self.held.len(),
            "writes are seen in issue order"
        );
        self.held.push(held.clone());
    }

    /// The updates of `holding` in causal order, concurrent ones by stamp (then by index).
    /// Positions in `holding` index plain vectors: the order is computed once per distinct set of
    /// held updates at the end of a run, in time linear in the causes it walks.
    fn order(&self, holding: &UpdateSet, stamp_of: impl Fn(u32) -> Stamp) -> Vec<u32> {
        let members: Vec<u32> = holding.iter().collect();
        let end = members.last().map_or(0, |last| *last as usize + 1);
        let mut position = vec![usize::MAX; end];
        for (at, &update) in members.iter().enumerate() {
            position[update as usize] = at;
        }
        let mut waiting_on = vec![0usize; members.len()];
        let mut followers: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
        for (at, &update) in members.iter().enumerate() {
            for cause in self.held[update as usize].iter() {
                let cause_at = position.get(cause as usize).copied().unwrap_or(usize::MAX);
                if cause != update && cause_at != usize::MAX {
                    followers[cause_at].push(at);
                    waiting_on[at] += 1;
                }
            }
        }
        let ready_entry = |at: usize| Reverse((stamp_of(members[at]), members[at], at));
        let mut ready: BinaryHeap<_> = (0..members.len())
            .filter(|at| waiting_on[*at] == 0)
            .map(ready_entry)
            .collect();
        let mut ordered = Vec::with_capacity(members.len());
        while let Some(Reverse((_, update, at))) = ready.pop() {
            ordered.push(update);
            for &follower in &followers[at] {
                waiting_on[follower] -= 1;
                if waiting_on[follower] == 0 {
                    ready.push(ready_entry(follower));
                }
            }
        }
        debug_assert_eq!(ordered.len(), members.len(), "causality has no cycle");
        ordered
    }
}

/// Why the specification could not be checked on `outcome`, if it could not.
pub fn not_checked<C: OpCrdt>(outcome: &Outcome<C>, order: &CausalOrder) -> Option<String> {
    (order.overflowed || outcome.updates.len() as u64 != outcome.updates_issued).then(|| {
        format!(
            "intent: the specification was not checked: the run issued {} updates, more than \
             the {SPECIFIED_UPDATES_MAX} it is checked over",
            outcome.updates_issued
        )
    })
}

/// The first live replica whose view is not what the specification says of the updates it
/// holds, as a violation.
pub fn specification<C: OpCrdt>(
    outcome: &Outcome<C>,
    make: &dyn Replicas<C>,
    order: &CausalOrder,
) -> Option<Violation> {
    if not_checked(outcome, order).is_some() {
        return None;
    }
    let live = outcome
        .replicas
        .iter()
        .filter(|r| matches!(r.status, converge_netsim::Status::Up));
    // Replicas that hold the same updates (all of them, once converged) share one expected view:
    // a list's specification costs time quadratic in the updates.
    let mut last: Option<(&UpdateSet, Option<C::View>)> = None;
    for replica in live {
        let expected = match last.take() {
            Some((held, expected)) if held.same_as(&replica.delivered) => expected,
            _ => expected_view(outcome, make, order, &replica.delivered),
        };
        if let Some(expected) = &expected {
            if !replica.crdt.view_matches(expected) {
                return Some(violation(outcome, replica, expected.clone()));
            }
        }
        last = Some((&replica.delivered, expected));
    }
    None
}

/// What the specification says of a replica holding `held`, if it says anything.
fn expected_view<C: OpCrdt>(
    outcome: &Outcome<C>,
    make: &dyn Replicas<C>,
    order: &CausalOrder,
    held: &UpdateSet,
) -> Option<C::View> {
    let records = &outcome.updates;
    let ordered = order.order(held, |i| records[i as usize].stamp);
    let updates: Vec<Specified<'_, C::Intent>> = ordered
        .iter()
        .map(|&i| {
            let record = &records[i as usize];
            Specified {
                intent: &record.intent,
                stamp: record.stamp,
                id: record.id,
                index: i,
                seen: &order.held[i as usize],
            }
        })
        .collect();
    make.expected_view(&updates)
}

fn violation<C: OpCrdt>(
    outcome: &Outcome<C>,
    replica: &Replica<C>,
    expected: <C as StateCrdt>::View,
) -> Violation {
    let held = replica.delivered.len();
    let detail = format!(
        "replica {} differs from the specification over the {held} updates it holds (in causal \
         order, concurrent ones by stamp)",
        replica.id
    );
    differs_from_reference(outcome, replica, detail, expected, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[u32]) -> UpdateSet {
        let mut set = UpdateSet::default();
        for member in members {
            set.insert(*member);
        }
        set
    }

    /// Update 2 was issued after its writer held 0; 1 and 3 are concurrent with the rest. Stamps
    /// put 2 first, but causality keeps it after 0, and a set without 0 keeps stamp order.
    #[test]
    fn causes_come_first_and_concurrent_updates_go_by_stamp() {
        let mut order = CausalOrder::default();
        for (index, held) in [vec![0], vec![1], vec![0, 2], vec![3]].iter().enumerate() {
            order.record(index as u32, &set(held));
        }
        let stamps = [
            Stamp::new(5, 0),
            Stamp::new(3, 1),
            Stamp::new(1, 0),
            Stamp::new(4, 2),
        ];
        let stamp_of = |i: u32| stamps[i as usize];
        assert_eq!(order.order(&set(&[0, 1, 2, 3]), stamp_of), vec![1, 3, 0, 2]);
        assert_eq!(order.order(&set(&[1, 2, 3]), stamp_of), vec![2, 1, 3]);
    }
}
