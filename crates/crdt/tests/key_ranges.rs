//! The key-range laws Merkle anti-entropy relies on, as property tests for the LWW grid and the
//! LWW-element dictionary:
//!
//! - the part of a state under some key ranges is the state that only the ops keyed there build
//!   (which is what lets the simulator say exactly which updates a part carries);
//! - the parts under ranges that cover the key space merge back into the whole state;
//! - two states show the same entries (keys and digests) under a range exactly when their parts
//!   there are equal.

use std::ops::Range;

use converge_crdt::{
    FixedCoin, Intent, KeyEntry, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt, Stamp,
    StateCrdt,
};
use proptest::prelude::*;

/// Writes over a few keys with tiny stamp times, so that entries often agree.
fn writes(keys: u32) -> impl Strategy<Value = Vec<(u32, Option<u64>, u64, u32)>> {
    prop::collection::vec(
        (0..keys, prop::option::of(0..3u64), 1..4u64, 0..2u32),
        0..40,
    )
}

fn build<C: OpCrdt<Intent = Intent>>(
    fresh: &C,
    writes: &[(u32, Option<u64>, u64, u32)],
) -> (C, Vec<C::Op>) {
    let mut state = fresh.clone();
    let mut ops = Vec::new();
    for (key, value, time, replica) in writes {
        let intent = match value {
            Some(value) => Intent::Put {
                key: *key,
                value: *value,
            },
            None => Intent::Remove { key: *key },
        };
        let op = state.prepare(&intent, Stamp::new(*time, *replica));
        state.apply(&op, &mut FixedCoin(false));
        ops.push(op);
    }
    (state, ops)
}

fn entries<C: StateCrdt>(state: &C, keys: Range<u64>) -> Vec<KeyEntry> {
    let mut out = Vec::new();
    state.visit_keys(keys, &mut |entry| out.push(entry));
    out
}

/// Sorted, disjoint ranges from cut points.
fn ranges_from(mut cuts: Vec<u64>, bound: u64) -> Vec<Range<u64>> {
    cuts.push(0);
    cuts.push(bound);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).step_by(2).map(|w| w[0]..w[1]).collect()
}

fn part_is_the_state_of_its_ops<C: OpCrdt<Intent = Intent>>(
    fresh: &C,
    writes: &[(u32, Option<u64>, u64, u32)],
    cuts: Vec<u64>,
) -> Result<(), TestCaseError> {
    let (state, ops) = build(fresh, writes);
    let bound = state.key_bound().unwrap().min(64);
    let ranges = ranges_from(cuts, bound);
    let mut only = fresh.clone();
    for op in &ops {
        let key = C::op_key(op).unwrap();
        if ranges.iter().any(|r| r.contains(&key)) {
            only.apply(op, &mut FixedCoin(false));
        }
    }
    prop_assert_eq!(state.restricted(&ranges).unwrap(), only);
    Ok(())
}

fn parts_merge_back<C: OpCrdt<Intent = Intent>>(
    fresh: &C,
    writes: &[(u32, Option<u64>, u64, u32)],
    cuts: Vec<u64>,
) -> Result<(), TestCaseError> {
    let (state, _) = build(fresh, writes);
    let bound = state.key_bound().unwrap();
    let mut points = cuts;
    points.extend([0, bound]);
    points.sort_unstable();
    points.dedup();
    let mut whole = fresh.clone();
    for w in points.windows(2) {
        whole.merge(
            &state
                .restricted(std::slice::from_ref(&(w[0]..w[1])))
                .unwrap(),
            &mut FixedCoin(false),
        );
    }
    prop_assert_eq!(whole, state);
    Ok(())
}

fn entries_match_parts<C: OpCrdt<Intent = Intent>>(
    fresh: &C,
    a: &[(u32, Option<u64>, u64, u32)],
    b: &[(u32, Option<u64>, u64, u32)],
    range: (u64, u64),
) -> Result<(), TestCaseError> {
    let (mut left, _) = build(fresh, a);
    let (mut right, _) = build(fresh, b);
    // Share most of a history, so that equal parts are common.
    let shared = left.clone();
    right.merge(&shared, &mut FixedCoin(false));
    left.merge(
        &right.restricted(std::slice::from_ref(&(0..8))).unwrap(),
        &mut FixedCoin(false),
    );
    let keys = range.0.min(range.1)..range.0.max(range.1);
    let same_part = left.restricted(std::slice::from_ref(&keys))
        == right.restricted(std::slice::from_ref(&keys));
    let same_entries = entries(&left, keys.clone()) == entries(&right, keys);
    prop_assert_eq!(same_part, same_entries);
    Ok(())
}

fn grid() -> LwwGrid {
    LwwGrid::new(LwwGridConfig {
        rows: 4,
        cols: 4,
        ..Default::default()
    })
}

fn dict() -> LwwDict {
    LwwDict::new(LwwDictConfig::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn grid_part_is_the_state_of_its_ops(w in writes(16), cuts in prop::collection::vec(0..16u64, 0..6)) {
        part_is_the_state_of_its_ops(&grid(), &w, cuts)?;
    }

    #[test]
    fn dict_part_is_the_state_of_its_ops(w in writes(20), cuts in prop::collection::vec(0..24u64, 0..6)) {
        part_is_the_state_of_its_ops(&dict(), &w, cuts)?;
    }

    #[test]
    fn grid_parts_merge_back(w in writes(16), cuts in prop::collection::vec(0..16u64, 0..6)) {
        parts_merge_back(&grid(), &w, cuts)?;
    }

    #[test]
    fn dict_parts_merge_back(w in writes(20), cuts in prop::collection::vec(0..24u64, 0..6)) {
        parts_merge_back(&dict(), &w, cuts)?;
    }

    #[test]
    fn grid_entries_match_parts(a in writes(16), b in writes(16), range in (0..17u64, 0..17u64)) {
        entries_match_parts(&grid(), &a, &b, range)?;
    }

    #[test]
    fn dict_entries_match_parts(a in writes(20), b in writes(20), range in (0..21u64, 0..21u64)) {
        entries_match_parts(&dict(), &a, &b, range)?;
    }
}

/// Types without key ranges say so: the defaults refuse rather than guess.
#[test]
fn the_defaults_say_a_type_has_no_key_ranges() {
    #[derive(Clone, Debug, PartialEq)]
    struct Counter(u64);
    impl StateCrdt for Counter {
        type View = u64;
        fn merge(&mut self, other: &Self, _coin: &mut dyn converge_crdt::Coin) {
            self.0 = self.0.max(other.0);
        }
        fn view(&self) -> u64 {
            self.0
        }
    }
    impl OpCrdt for Counter {
        type Intent = Intent;
        type Op = u64;
        fn prepare(&self, _intent: &Intent, _stamp: Stamp) -> u64 {
            self.0 + 1
        }
        fn apply(&mut self, op: &u64, _coin: &mut dyn converge_crdt::Coin) {
            self.0 = self.0.max(*op);
        }
    }
    let counter = Counter(3);
    assert_eq!(counter.key_bound(), None);
    assert_eq!(counter.restricted(&[0..1, 2..3]), None);
    assert_eq!(Counter::op_key(&4), None);
    assert_eq!(entries(&counter, 0..10), Vec::new());
    assert_eq!(grid().key_bound(), Some(16));
    assert_eq!(dict().key_bound(), Some(1 << 32));
}
