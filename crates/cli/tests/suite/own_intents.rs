//! A user's list with intents of its own (insert a character at a position, delete the character
//! at a position), verified from `cargo test` as its author would: the writes come from a proptest
//! strategy that looks at the replica's list, so that every position exists; a planted bug (a
//! delete that names a position instead of an element) is caught, shrunk through the strategy's
//! own shrinking, and written as a scenario file whose `intent = { ... }` writes replay it.

use std::collections::BTreeMap;

use converge::crdt::{Coin, OpCrdt, ReplicaId, Stamp, StateCrdt, WorkloadIntent};
use converge::netsim::{ProtocolKind, Scenario, SimDuration, Verdict};
use converge::proptest::prelude::*;
use converge::verify::{Incarnations, Verify};
use serde::{Deserialize, Serialize};

/// What a user of the list asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
enum Edit {
    Insert { at: u32, text: char },
    Delete { at: u32 },
}

impl WorkloadIntent for Edit {}

/// An element's name: its origin, the origin's count of elements it inserted, and the origin's
/// incarnation.
type ElementId = (ReplicaId, u64, u32);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum ListOp {
    Insert {
        id: ElementId,
        position: f64,
        text: char,
        time: u64,
    },
    /// The correct delete: names the element.
    Delete { id: ElementId },
    /// The planted bug: names a position, which concurrent inserts shift.
    DeleteAt { at: u32 },
}

/// A list whose elements are ordered by a position between their neighbours' (ties broken by
/// name), deleted by tombstones; merged by union.
#[derive(Clone, Debug)]
struct Doc {
    incarnation: u32,
    /// The planted bug: deletes name positions.
    deletes_by_position: bool,
    elements: BTreeMap<ElementId, (f64, char, bool)>,
    /// The greatest stamp time of an insert held, so that a Lamport clock moves past it.
    time_max: u64,
}

impl Doc {
    fn new(incarnation: u32, deletes_by_position: bool) -> Self {
        Doc {
            incarnation,
            deletes_by_position,
            elements: BTreeMap::new(),
            time_max: 0,
        }
    }

    /// The live elements in list order.
    fn live(&self) -> Vec<(ElementId, f64, char)> {
        let mut live: Vec<_> = self
            .elements
            .iter()
            .filter(|(_, (_, _, deleted))| !deleted)
            .map(|(id, (position, text, _))| (*id, *position, *text))
            .collect();
        live.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        live
    }

    fn len(&self) -> u32 {
        self.live().len() as u32
    }
}

/// The replicated state only: the incarnation and the bug are the replica's own.
impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        self.elements == other.elements
    }
}

impl StateCrdt for Doc {
    type View = String;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (id, (position, text, deleted)) in &other.elements {
            let mine = self
                .elements
                .entry(*id)
                .or_insert((*position, *text, false));
            mine.2 |= *deleted;
        }
        self.time_max = self.time_max.max(other.time_max);
    }

    fn time_max(&self) -> u64 {
        self.time_max
    }

    fn view(&self) -> String {
        self.live().iter().map(|(_, _, text)| text).collect()
    }
}

impl OpCrdt for Doc {
    type Intent = Edit;
    type Op = ListOp;

    fn prepare(&self, edit: &Edit, stamp: Stamp) -> ListOp {
        let live = self.live();
        match *edit {
            Edit::Insert { at, text } => {
                let at = (at as usize).min(live.len());
                let before = if at == 0 { 0.0 } else { live[at - 1].1 };
                let after = live.get(at).map_or(before + 2.0, |e| e.1);
                let inserted = self.elements.keys().filter(|id| id.0 == stamp.replica);
                ListOp::Insert {
                    id: (stamp.replica, inserted.count() as u64 + 1, self.incarnation),
                    position: (before + after) / 2.0,
                    text,
                    time: stamp.time,
                }
            }
            Edit::Delete { at } if self.deletes_by_position => ListOp::DeleteAt { at },
            Edit::Delete { at } => ListOp::Delete {
                id: live[at as usize].0,
            },
        }
    }

    fn apply(&mut self, op: &ListOp, _coin: &mut dyn Coin) {
        match *op {
            ListOp::Insert {
                id,
                position,
                text,
                time,
            } => {
                self.elements.entry(id).or_insert((position, text, false));
                self.time_max = self.time_max.max(time);
            }
            ListOp::Delete { id } => {
                if let Some(element) = self.elements.get_mut(&id) {
                    element.2 = true;
                }
            }
            ListOp::DeleteAt { at } => {
                if let Some((id, _, _)) = self.live().get(at as usize) {
                    self.elements.get_mut(id).expect("a live element").2 = true;
                }
            }
        }
    }
}

/// Edits that exist in `doc`: an insert anywhere, a delete of a character that is there.
fn edits(doc: &Doc) -> BoxedStrategy<Edit> {
    let len = doc.len();
    if len == 0 {
        inserts(doc)
    } else {
        prop_oneof![inserts(doc), (0..len).prop_map(|at| Edit::Delete { at })].boxed()
    }
}

/// An insert anywhere in `doc`.
fn inserts(doc: &Doc) -> BoxedStrategy<Edit> {
    (0..=doc.len(), proptest::char::range('a', 'z'))
        .prop_map(|(at, text)| Edit::Insert { at, text })
        .boxed()
}

/// Three replicas editing one list for 10 s over reliable causal broadcast (every op arrives,
/// once, after the ops it depends on).
fn scenario() -> Scenario {
    let mut scenario = Scenario {
        name: "own-intents".into(),
        replicas: 3,
        duration: SimDuration::from_secs(10),
        ..Scenario::default()
    };
    scenario.protocol.kind = ProtocolKind::ReliableCausal;
    scenario
}

#[test]
fn a_list_with_its_own_intents_converges() {
    let summary = Verify::new(scenario(), |_| Doc::new(0, false))
        .intents(edits)
        .seeds(0..40)
        .assert_converges();
    assert_eq!(summary.seeds, 40);
    assert!(summary.runs_with_conflicts > 20, "{summary:?}");
}

#[test]
fn a_delete_by_position_is_caught_and_shrunk_through_the_strategy() {
    let verify = Verify::new(scenario(), |_| Doc::new(0, true))
        .intents(edits)
        .seeds(0..40);
    let failure = verify
        .run()
        .expect("valid scenario")
        .expect_err("deletes by position diverge under concurrent edits");
    assert_eq!(failure.report.verdict, Verdict::Diverges);
    let shrunk = failure.shrunk.as_ref().expect("shrunk");
    assert!(shrunk.minimal.writes <= 4, "{}", shrunk.sizes());
    // Simplified through the strategy: the characters shrink towards 'a'.
    let ops = &shrunk.scenario.workload.ops;
    assert!(ops
        .iter()
        .all(|op| op.drawn.is_none() && op.intent.is_some()));
    let text = failure.counterexample_file().expect("a file");
    assert!(text.contains("[workload.ops.intent]"), "{text}");
    assert!(text.contains("kind = \"insert\""), "{text}");

    // The file replays the failure with the same factory, and no strategy.
    let path = std::env::temp_dir().join(format!("own-intents-{}.toml", std::process::id()));
    std::fs::write(&path, &text).expect("written");
    let replayed = Verify::from_file(&path, |_| Doc::new(0, true))
        .expect("a valid file")
        .seeds(0..1)
        .run()
        .expect("valid scenario");
    std::fs::remove_file(&path).ok();
    let replayed = replayed.expect_err("the counterexample still fails");
    assert_eq!(replayed.report.verdict, shrunk.verdict);
}

#[test]
fn key_value_writes_for_a_type_with_its_own_intents_are_refused_naming_the_key() {
    let error = Verify::new(scenario(), |_| Doc::new(0, false))
        .seeds(0..1)
        .run()
        .expect_err("no generator for the list's intents");
    let message = error.to_string();
    assert!(message.contains("workload.rate"), "{message}");
    assert!(message.contains("Verify::intents"), "{message}");

    let mut listed = scenario();
    listed.workload.rate = 0.0;
    listed.workload.ops = vec![converge::netsim::TimedOp {
        at: SimDuration::from_secs(1),
        replica: 0,
        key: 3,
        value: Some(4),
        ..Default::default()
    }];
    let error = Verify::new(listed.clone(), |_| Doc::new(0, false))
        .run()
        .expect_err("a key and a value are no edit");
    assert!(error.to_string().contains("workload.ops[0]"), "{error}");

    listed.workload.ops[0].value = None;
    listed.workload.ops[0].intent = Some(serde_json::json!({ "kind": "insert", "at": "x" }));
    let error = Verify::new(listed, |_| Doc::new(0, false))
        .run()
        .expect_err("not an edit");
    assert!(
        error.to_string().contains("workload.ops[0].intent"),
        "{error}"
    );
}

/// Replica 1 loses its state at 4 s and is back at 5 s, under periodic rounds of whole states
/// without a snapshot on restart: it writes before a round brings the others' states back.
fn crashing() -> Scenario {
    let mut crashing = scenario();
    crashing.protocol.kind = ProtocolKind::AntiEntropy;
    crashing.protocol.snapshot_on_join = false;
    crashing.faults = vec![converge::netsim::FaultSpec::Crash {
        at: SimDuration::from_secs(4),
        replica: 1,
        restart: Some(SimDuration::from_secs(5)),
        state: converge::netsim::Durability::Volatile,
    }];
    crashing
}

/// Elements named by (origin, count): after a restart that lost the replica's state, its count
/// starts over and a new insert takes the name of an old one that other replicas hold, which
/// then never learn the new one. The incarnation in the name keeps them apart.
#[test]
fn incarnations_keep_names_apart_across_a_volatile_restart() {
    let crashing = crashing();
    let forgetful = Verify::new(crashing.clone(), |_| Doc::new(0, false))
        .intents(inserts)
        .seeds(0..40)
        .without_shrinking()
        .all_failures()
        .run()
        .expect("valid scenario");
    let failure = forgetful.expect_err("reused names lose inserts");
    assert!(
        failure.failing_seeds.len() >= 20,
        "{:?}",
        failure.failing_seeds
    );

    Verify::new(
        crashing,
        Incarnations(|_, incarnation| Doc::new(incarnation, false)),
    )
    .intents(inserts)
    .seeds(0..40)
    .assert_converges();
}

/// A counter's intent: add `by`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Add {
    by: u32,
}

impl WorkloadIntent for Add {}

/// A counter made of one count per replica, merged by maximum. `reads_the_total` plants the
/// lost increment of a stale read: the op carries the whole counter's new total as the origin
/// saw it, so two concurrent increments leave the greater of the two totals, not their sum.
#[derive(Clone, Debug)]
struct Counter {
    reads_the_total: bool,
    counts: BTreeMap<ReplicaId, u64>,
}

impl PartialEq for Counter {
    fn eq(&self, other: &Self) -> bool {
        self.counts == other.counts
    }
}

/// The model checker fingerprints states by their replicated part.
impl std::hash::Hash for Counter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.counts.hash(state);
    }
}

impl StateCrdt for Counter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (replica, count) in &other.counts {
            let mine = self.counts.entry(*replica).or_default();
            *mine = (*mine).max(*count);
        }
    }

    fn view(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl OpCrdt for Counter {
    type Intent = Add;
    /// (the count's owner, its new count)
    type Op = (ReplicaId, u64);

    fn prepare(&self, add: &Add, stamp: Stamp) -> (ReplicaId, u64) {
        if self.reads_the_total {
            // Everything under one owner: the stale read of the whole counter.
            return (0, self.view() + u64::from(add.by));
        }
        let mine = self.counts.get(&stamp.replica).copied().unwrap_or(0);
        (stamp.replica, mine + u64::from(add.by))
    }

    fn apply(&mut self, &(owner, count): &(ReplicaId, u64), _coin: &mut dyn Coin) {
        let mine = self.counts.entry(owner).or_default();
        *mine = (*mine).max(count);
    }
}

/// The counter's specification: the sum of what the updates added.
fn total(updates: &[converge::netsim::Specified<'_, Add>]) -> u64 {
    updates.iter().map(|u| u64::from(u.intent.by)).sum()
}

fn counting(reads_the_total: bool) -> Verify<Counter> {
    Verify::new(scenario(), move |_| Counter {
        reads_the_total,
        counts: BTreeMap::new(),
    })
    .intents(|_: &Counter| (1..10u32).prop_map(|by| Add { by }))
    .spec(total)
}

#[test]
fn a_lost_increment_from_a_stale_read_is_caught_by_the_specification() {
    let summary = counting(false).seeds(0..40).assert_converges();
    assert!(summary.oracles_not_run.is_empty(), "{summary}");

    let failure = counting(true)
        .seeds(0..40)
        .run()
        .expect("valid scenario")
        .expect_err("concurrent increments are lost");
    assert_eq!(failure.report.verdict, Verdict::IntentViolated);
    let text = failure.to_string();
    assert!(text.contains("differs from the specification"), "{text}");
    let shrunk = failure.shrunk.as_ref().expect("shrunk");
    // A few concurrent increments are the whole story; each adds as little as the strategy can.
    assert!(shrunk.minimal.writes <= 3, "{}", shrunk.sizes());
    let file = failure.counterexample_file().expect("a file");
    let ones = file.matches("by = 1\n").count() as u64;
    assert_eq!(ones, shrunk.minimal.writes, "{file}");
}

#[test]
fn without_a_specification_the_summary_says_which_oracle_did_not_run() {
    let summary = Verify::new(scenario(), |_| Doc::new(0, false))
        .intents(edits)
        .seeds(0..2)
        .assert_converges();
    let [not_run] = summary.oracles_not_run.as_slice() else {
        panic!("one oracle did not run: {summary}");
    };
    assert!(not_run.contains("Verify::spec"), "{not_run}");
    assert!(summary.to_string().contains("not run: intent"), "{summary}");
}

/// A state-only type: a set of characters, merged by union, with no ops at all.
#[derive(Clone, Debug, Default, PartialEq)]
struct Letters(std::collections::BTreeSet<char>);

impl StateCrdt for Letters {
    type View = String;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        self.0.extend(other.0.iter().copied());
    }

    fn view(&self) -> String {
        self.0.iter().collect()
    }
}

impl converge::crdt::LocalUpdate for Letters {
    type Intent = char;

    fn update(&mut self, letter: &char, _stamp: Stamp) {
        self.0.insert(*letter);
    }
}

/// The letters as a set under `kind`, checked against the set of every letter written.
fn letters(kind: ProtocolKind) -> Verify<converge::crdt::StateOnly<Letters>> {
    use converge::crdt::StateOnly;
    let mut scenario = scenario();
    scenario.protocol.kind = kind;
    Verify::new(scenario, |_| StateOnly(Letters::default()))
        .intents(|_: &StateOnly<Letters>| proptest::char::range('a', 'z'))
        .spec(|updates: &[converge::netsim::Specified<'_, char>]| {
            let mut letters: Vec<char> = updates.iter().map(|u| *u.intent).collect();
            letters.sort_unstable();
            letters.dedup();
            letters.into_iter().collect()
        })
}

#[test]
fn a_state_only_type_runs_under_protocols_that_ship_states() {
    for kind in [ProtocolKind::StateBroadcast, ProtocolKind::AntiEntropy] {
        let summary = letters(kind).seeds(0..20).assert_converges();
        assert!(summary.oracles_not_run.is_empty(), "{summary}");
    }
    let error = letters(ProtocolKind::OpBroadcast)
        .run()
        .expect_err("op broadcast ships ops");
    let message = error.to_string();
    assert!(message.contains("protocol.kind"), "{message}");
    assert!(message.contains("state-only"), "{message}");
}

/// The lost increment's minimal counterexample, as data: three concurrent increments of 1 under
/// reliable causal broadcast, which the counter that reads its whole total ends at 1 (or 2)
/// instead of 3. The replay of its own ops agrees with it; only the specification does not.
#[test]
fn lost_increment_minimal_counterexample_replays() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/suite/minimal/lost-increment.toml"
    );
    let counter = |reads_the_total| {
        Verify::from_file(file, move |_| Counter {
            reads_the_total,
            counts: BTreeMap::new(),
        })
        .expect("the pinned file loads")
        .spec(total)
        .seeds(0..1)
    };
    let failure = counter(true)
        .without_shrinking()
        .run()
        .expect("valid scenario")
        .expect_err("the stale read still loses increments");
    assert_eq!(failure.report.verdict, Verdict::IntentViolated);
    assert_eq!(failure.report.updates, 3);
    counter(false).assert_converges();
}

/// Every correct configuration above, over the seeds of `CONVERGE_SEEDS` (`.ci/run` runs 10,000
/// in release): no false alarm from intents of a type's own, their specification, incarnations or
/// state-only types.
#[test]
fn correct_configurations() {
    Verify::new(scenario(), |_| Doc::new(0, false))
        .intents(edits)
        .assert_converges();
    counting(false).assert_converges();
    Verify::new(
        crashing(),
        Incarnations(|_, incarnation| Doc::new(incarnation, false)),
    )
    .intents(edits)
    .assert_converges();
    letters(ProtocolKind::StateBroadcast).assert_converges();
    letters(ProtocolKind::AntiEntropy).assert_converges();
}

/// The model checker explores a type's own intents through `ModelCheck::writes`, and refuses to
/// guess them.
#[test]
fn the_model_checker_takes_a_type_s_own_intents() {
    use converge::checker::model::{CheckError, ModelCheck, Verdict as ModelVerdict};
    use converge::netsim::protocols::OpBroadcast;
    let counter = |reads_the_total| {
        ModelCheck::new(OpBroadcast, move |_| Counter {
            reads_the_total,
            counts: BTreeMap::new(),
        })
        .replicas(2)
    };
    let error = counter(false).run().expect_err("no writes to explore");
    assert!(matches!(error, CheckError::OwnIntents { .. }), "{error}");
    let writes = |_, _| vec![Add { by: 1 }, Add { by: 2 }];
    let report = counter(false).writes(writes).run().expect("valid bounds");
    assert!(
        matches!(report.verdict, ModelVerdict::Pass),
        "{:?}",
        report.verdict
    );
}
