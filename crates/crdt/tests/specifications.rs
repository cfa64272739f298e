//! The built-in types' specifications over intents ([`GridSpec`], [`DictSpec`]) against the types
//! themselves: a correct grid or dictionary that prepares every write at its origin and learns
//! them in any order, by op or by merge, shows exactly what the specification says of the same
//! writes. Keys, stamp times, replicas and values are tiny, so that writes to one key at one stamp
//! time (where a tie-break decides) are frequent.
//!
//! The reproductions of real tie-break bugs must not agree: named tests pin a minimal case each.

use converge_crdt::{
    Bias, FixedCoin, GridSpec, Intent, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt,
    Stamp, StampedSpec, StateCrdt, TieBreak,
};
use proptest::prelude::*;

/// One write: what was asked, where and when.
#[derive(Clone, Copy, Debug)]
struct Write {
    intent: Intent,
    stamp: Stamp,
}

fn write() -> impl Strategy<Value = Write> {
    let intent = prop_oneof![
        3 => (0u32..5, 0u64..3).prop_map(|(key, value)| Intent::Put { key, value }),
        1 => (0u32..5).prop_map(|key| Intent::Remove { key }),
    ];
    (intent, 1u64..4, 0u32..3).prop_map(|(intent, time, replica)| Write {
        intent,
        stamp: Stamp::new(time, replica),
    })
}

/// Writes, and the order in which a second replica learns them (a permutation, by op), and where
/// the first replica, which learns them in issue order, is merged into the second.
fn history() -> impl Strategy<Value = (Vec<Write>, Vec<usize>, usize)> {
    prop::collection::vec(write(), 0..10).prop_flat_map(|writes| {
        let len = writes.len();
        let order = Just((0..len).collect::<Vec<usize>>()).prop_shuffle();
        (Just(writes), order, 0..=len)
    })
}

/// What the type shows after learning every write: ops in a shuffled order at one replica, with
/// a merge of another replica (which applied a prefix in issue order) part way through.
fn learned<C: OpCrdt<Intent = Intent> + Clone>(
    empty: &C,
    writes: &[Write],
    order: &[usize],
    merge_at: usize,
) -> C::View {
    let ops: Vec<C::Op> = writes
        .iter()
        .map(|w| empty.prepare(&w.intent, w.stamp))
        .collect();
    let mut coin = FixedCoin(false);
    let mut first = empty.clone();
    for op in &ops[..merge_at] {
        first.apply(op, &mut coin);
    }
    let mut second = empty.clone();
    for (step, index) in order.iter().enumerate() {
        if step == merge_at {
            second.merge(&first, &mut coin);
        }
        second.apply(&ops[*index], &mut coin);
    }
    if merge_at == order.len() {
        second.merge(&first, &mut coin);
    }
    second.view()
}

fn specified<C: OpCrdt<Intent = Intent>>(
    mut spec: impl StampedSpec<C>,
    writes: &[Write],
) -> C::View {
    for w in writes {
        spec.add(&w.intent, w.stamp);
    }
    spec.view()
}

fn grid_config(tie_break: TieBreak) -> LwwGridConfig {
    LwwGridConfig {
        rows: 2,
        cols: 2,
        tie_break,
    }
}

fn dict_config(bias: Bias, tie_break: TieBreak) -> LwwDictConfig {
    LwwDictConfig { bias, tie_break }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_grid_shows_what_its_specification_says((writes, order, merge_at) in history()) {
        let config = grid_config(TieBreak::PeerId);
        prop_assert_eq!(
            learned(&LwwGrid::new(config), &writes, &order, merge_at),
            specified(GridSpec::new(config), &writes)
        );
    }

    #[test]
    fn the_dictionary_shows_what_its_specification_says(
        (writes, order, merge_at) in history(),
        remove_bias in any::<bool>(),
    ) {
        let bias = if remove_bias { Bias::Remove } else { Bias::Add };
        let config = dict_config(bias, TieBreak::PeerId);
        prop_assert_eq!(
            learned(&LwwDict::new(config), &writes, &order, merge_at),
            specified(converge_crdt::DictSpec::new(config), &writes)
        );
    }
}

/// Two writes to one cell at one stamp time: the greater replica's wins, whatever the order.
fn tie() -> [Write; 2] {
    [
        Write {
            intent: Intent::Put { key: 0, value: 1 },
            stamp: Stamp::new(1, 1),
        },
        Write {
            intent: Intent::Put { key: 0, value: 2 },
            stamp: Stamp::new(1, 0),
        },
    ]
}

#[test]
fn a_grid_keeping_its_local_write_breaks_its_specification() {
    let config = grid_config(TieBreak::KeepLocal);
    let writes = tie();
    let shown = learned(&LwwGrid::new(config), &writes, &[1, 0], 0);
    assert_eq!(shown.cells[0], Some(2), "replica 0's write was kept");
    assert_eq!(specified(GridSpec::new(config), &writes).cells[0], Some(1));
}

#[test]
fn a_dictionary_keeping_its_local_add_breaks_its_specification() {
    let config = dict_config(Bias::Add, TieBreak::KeepLocal);
    let writes = tie();
    let shown = learned(&LwwDict::new(config), &writes, &[1, 0], 0);
    assert_eq!(shown.get(&0), Some(&2), "replica 0's add was kept");
    assert_eq!(
        specified(converge_crdt::DictSpec::new(config), &writes).get(&0),
        Some(&1)
    );
}

#[test]
fn a_remove_at_the_time_of_an_add_follows_the_bias() {
    let writes = [
        Write {
            intent: Intent::Put { key: 3, value: 7 },
            stamp: Stamp::new(2, 0),
        },
        Write {
            intent: Intent::Remove { key: 3 },
            stamp: Stamp::new(2, 1),
        },
    ];
    for (bias, shown) in [(Bias::Add, Some(&7)), (Bias::Remove, None)] {
        let config = dict_config(bias, TieBreak::PeerId);
        let view = specified(converge_crdt::DictSpec::new(config), &writes);
        assert_eq!(view.get(&3), shown, "{bias:?}");
        assert_eq!(learned(&LwwDict::new(config), &writes, &[1, 0], 1), view);
    }
}

/// One step of a list history: replica `replica` writes `intent`, or learns the `pick`-th update
/// it lacks (by op, or by merging the state of the replica that issued it).
#[derive(Clone, Copy, Debug)]
enum ListStep {
    Write {
        replica: usize,
        intent: Intent,
    },
    Learn {
        replica: usize,
        pick: usize,
        by_merge: bool,
    },
}

fn list_step() -> impl Strategy<Value = ListStep> {
    let intent = prop_oneof![
        3 => (0u32..6, 0u64..4).prop_map(|(key, value)| Intent::Put { key, value }),
        2 => (0u32..6).prop_map(|key| Intent::Remove { key }),
    ];
    prop_oneof![
        (0usize..3, intent).prop_map(|(replica, intent)| ListStep::Write { replica, intent }),
        (0usize..3, 0usize..8, any::<bool>()).prop_map(|(replica, pick, by_merge)| {
            ListStep::Learn {
                replica,
                pick,
                by_merge,
            }
        }),
    ]
}

/// Three lists under a Lamport clock: each update is recorded with what its writer held.
struct ListRun {
    lists: Vec<converge_crdt::Rga>,
    held: Vec<Vec<bool>>,
    clocks: Vec<u64>,
    updates: Vec<(Intent, Stamp, converge_crdt::ListOp)>,
    seen: Vec<Vec<bool>>,
}

impl ListRun {
    fn new() -> Self {
        ListRun {
            lists: vec![converge_crdt::Rga::new(); 3],
            held: vec![Vec::new(); 3],
            clocks: vec![0; 3],
            updates: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn learn(&mut self, replica: usize, update: usize, from: Option<usize>) {
        let mut coin = FixedCoin(false);
        match from {
            Some(writer) => {
                let state = self.lists[writer].clone();
                self.lists[replica].merge(&state, &mut coin);
                for (index, held) in self.held[writer].clone().into_iter().enumerate() {
                    if held {
                        self.hold(replica, index);
                    }
                }
            }
            None => {
                self.lists[replica].apply(&self.updates[update].2, &mut coin);
                self.hold(replica, update);
            }
        }
    }

    fn hold(&mut self, replica: usize, update: usize) {
        if !self.held[replica][update] {
            self.held[replica][update] = true;
            self.clocks[replica] = self.clocks[replica].max(self.updates[update].1.time);
        }
    }

    fn step(&mut self, step: ListStep) {
        match step {
            ListStep::Write { replica, intent } => {
                self.clocks[replica] += 1;
                let stamp = Stamp::new(self.clocks[replica], replica as u32);
                let op = self.lists[replica].prepare(&intent, stamp);
                let index = self.updates.len();
                self.updates.push((intent, stamp, op));
                for held in &mut self.held {
                    held.push(false);
                }
                self.seen.push(self.held[replica].clone());
                self.learn(replica, index, None);
            }
            ListStep::Learn {
                replica,
                pick,
                by_merge,
            } => {
                let lacking: Vec<usize> = (0..self.updates.len())
                    .filter(|u| !self.held[replica][*u])
                    .collect();
                if let Some(&update) = lacking.get(pick % lacking.len().max(1)) {
                    let writer = self.updates[update].1.replica as usize;
                    self.learn(replica, update, by_merge.then_some(writer));
                }
            }
        }
    }

    /// The specification's list over every update, in issue order (a causal order).
    fn specified(&self) -> Vec<u64> {
        let updates: Vec<(Intent, Stamp)> = self.updates.iter().map(|(i, s, _)| (*i, *s)).collect();
        converge_crdt::ListSpec::view(&updates, |i, j| self.seen[i][j])
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever each list saw when it wrote, and in whatever order and by whichever means they
    /// learn the updates, every list that ends holding them all shows the specification's list.
    #[test]
    fn the_list_shows_what_its_specification_says(steps in prop::collection::vec(list_step(), 0..24)) {
        let mut run = ListRun::new();
        for step in steps {
            run.step(step);
        }
        for replica in 0..3 {
            for update in 0..run.updates.len() {
                run.learn(replica, update, None);
            }
            prop_assert_eq!(run.lists[replica].view(), run.specified(), "replica {}", replica);
        }
    }
}

/// Two concurrent inserts at the head of an empty list: the later id comes first, whatever
/// positions a replay of their keys in stamp order would give.
#[test]
fn concurrent_inserts_at_the_head_end_in_descending_id_order() {
    let updates = [
        (Intent::Put { key: 0, value: 1 }, Stamp::new(1, 0)),
        (Intent::Put { key: 0, value: 2 }, Stamp::new(1, 1)),
    ];
    assert_eq!(
        converge_crdt::ListSpec::view(&updates, |_, _| false),
        vec![2, 1]
    );
    // The second writer saw the first: position 0 puts it before.
    assert_eq!(
        converge_crdt::ListSpec::view(&updates, |_, _| true),
        vec![2, 1]
    );
    // At position 1 after seeing it: after.
    let after = [
        updates[0],
        (Intent::Put { key: 1, value: 2 }, Stamp::new(2, 1)),
    ];
    assert_eq!(
        converge_crdt::ListSpec::view(&after, |_, _| true),
        vec![1, 2]
    );
}
