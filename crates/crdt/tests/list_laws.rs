//! The CRDT laws for the RGA list, as property tests, and the list's sequential specification.
//!
//! A list op names elements (the one it inserts after, the one it deletes), so ops drawn at random
//! would mostly refer to nothing. Each case is instead a *history*: three replicas write intents
//! (inserts and deletes at positions), stamped by Lamport clocks, and learn from each other by
//! merging whole states, by merging deltas, or by receiving single ops out of order and more than
//! once, as a lossy, reordering, duplicating network would hand them; a replica may also restart
//! empty with a fresh clock (volatile state), which reuses stamps. Every op written goes to a log.
//! The laws are then checked on the replicas the history left:
//!
//! - merge is commutative, associative and idempotent, and inflationary, as is apply;
//! - any two ops commute, and applying an op twice is applying it once;
//! - the log delivered in any order, with duplicates, to an empty replica gives one state, the
//!   one the log applied in order gives, and merging every replica gives no more than that (equal
//!   to it when no replica lost its state);
//! - a delta since a version, merged into a replica that held that version, equals the state;
//! - views compare in place, and equal views have equal digests;
//! - without restarts (stamps that respect causality), the merged list equals the sequential
//!   specification: every op in stamp order, each insert immediately after the element its writer
//!   put it after, each delete hiding its element, written here independently of the RGA.

use converge_crdt::{
    DeltaCrdt, ElemId, FixedCoin, Intent, ListOp, OpCrdt, ReplicaId, Rga, Stamp, StateCrdt,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const REPLICAS: usize = 3;
/// The longest history a case runs.
const STEPS_MAX: usize = 80;

#[derive(Clone, Debug)]
enum Step {
    /// An insert (`remove: false`) or delete at a position drawn from `key`.
    Write {
        replica: usize,
        key: u32,
        value: u64,
        remove: bool,
    },
    /// `to` merges the whole state of `from`, by one of the merge's paths.
    Merge {
        to: usize,
        from: usize,
        path: MergePath,
    },
    /// `to` merges what `from` changed since `to` last heard from it this way.
    Delta { to: usize, from: usize },
    /// `to` receives one op of the log (picked by `op`): out of order, maybe again.
    Deliver { to: usize, op: usize },
    /// `replica` loses its state and restarts empty, with a fresh clock.
    Restart { replica: usize },
    /// Remember every replica as it is now (the delta law starts from here).
    Remember,
}

/// Which way a merge takes: the paths a merge chooses by the sizes of what it meets, each
/// forced here so that small states take them all.
#[derive(Clone, Copy, Debug)]
enum MergePath {
    /// As `merge` chooses.
    Chosen,
    /// Every waiting insert and orphan delete of the other state looked up in one walk, and
    /// every waiting insert it lacks placed by rebuilding the list.
    Walks,
    /// The whole list rebuilt from every insert at once.
    Rebuild,
}

fn step(restarts: bool) -> impl Strategy<Value = Step> {
    let replica = 0..REPLICAS;
    prop_oneof![
        6 => (replica.clone(), any::<u32>(), 0..4u64, prop::bool::weighted(0.2)).prop_map(
            |(replica, key, value, remove)| Step::Write { replica, key, value, remove }
        ),
        2 => (
            replica.clone(),
            replica.clone(),
            prop_oneof![Just(MergePath::Chosen), Just(MergePath::Walks), Just(MergePath::Rebuild)]
        )
            .prop_map(|(to, from, path)| Step::Merge { to, from, path }),
        2 => (replica.clone(), replica.clone()).prop_map(|(to, from)| Step::Delta { to, from }),
        8 => (replica.clone(), any::<usize>()).prop_map(|(to, op)| Step::Deliver { to, op }),
        (if restarts { 1 } else { 0 }) => replica.clone().prop_map(|replica| Step::Restart { replica }),
        1 => Just(Step::Remember),
    ]
}

/// What a history left.
#[derive(Clone, Debug)]
struct World {
    replicas: Vec<Rga>,
    /// Every op written, with its stamp, in the order written.
    log: Vec<(Stamp, ListOp)>,
    /// The replicas as they were at the last `Remember` (empty before one).
    remembered: Vec<Rga>,
    /// Which replicas restarted since then (their versions started over).
    restarted_since: [bool; REPLICAS],
    /// Whether some replica held an insert that waited for its reference, at some step.
    waited: bool,
    restarted: bool,
}

fn run(steps: &[Step]) -> World {
    let coin = &mut FixedCoin(false);
    let mut replicas = vec![Rga::new(); REPLICAS];
    let mut clocks = [0u64; REPLICAS];
    // heard[to][from]: the version of `from` that `to` last merged a delta up to.
    let mut heard = [[0u64; REPLICAS]; REPLICAS];
    let mut log = Vec::new();
    let mut remembered = replicas.clone();
    let mut restarted = false;
    let mut restarted_since = [false; REPLICAS];
    let mut waited = false;
    for step in steps {
        match *step {
            Step::Write {
                replica,
                key,
                value,
                remove,
            } => {
                let intent = if remove {
                    Intent::Remove { key }
                } else {
                    Intent::Put { key, value }
                };
                // A Lamport clock: past every stamp the replica issued or holds.
                let time = clocks[replica].max(replicas[replica].time_max()) + 1;
                clocks[replica] = time;
                let stamp = Stamp::new(time, replica as ReplicaId);
                let op = replicas[replica].prepare(&intent, stamp);
                replicas[replica].apply(&op, coin);
                log.push((stamp, op));
            }
            Step::Merge { to, from, path } => {
                let other = replicas[from].clone();
                match path {
                    MergePath::Chosen => replicas[to].merge(&other, coin),
                    MergePath::Walks => replicas[to].merge_with_limits(&other, 0, 0),
                    MergePath::Rebuild => replicas[to].merge_by_rebuilding(&other),
                }
            }
            Step::Delta { to, from } => {
                // Deltas build on what `to` held of `from`: a restart of either forgets that.
                let since = heard[to][from].min(replicas[from].version());
                let delta = replicas[from].delta_since(since);
                replicas[to].merge(&delta, coin);
                heard[to][from] = replicas[from].version();
            }
            Step::Deliver { to, op } => {
                if !log.is_empty() {
                    // Half the time one of the last few ops written, which is likely to name an
                    // element the receiver has not heard of yet.
                    let index = if op % 2 == 0 {
                        op / 2 % log.len()
                    } else {
                        log.len() - 1 - (op / 2 % log.len().min(3))
                    };
                    let (_, op) = log[index];
                    replicas[to].apply(&op, coin);
                }
            }
            Step::Restart { replica } => {
                replicas[replica] = Rga::new();
                clocks[replica] = 0;
                restarted = true;
                restarted_since[replica] = true;
                heard[replica] = [0; REPLICAS];
                for row in &mut heard {
                    row[replica] = 0;
                }
            }
            Step::Remember => {
                remembered = replicas.clone();
                restarted_since = [false; REPLICAS];
            }
        }
        waited |= replicas.iter().any(|r| r.waiting() > 0);
    }
    World {
        replicas,
        log,
        remembered,
        restarted_since,
        waited,
        restarted,
    }
}

#[derive(Clone, Debug)]
struct Case {
    steps: Vec<Step>,
    /// Picks two ops of the log, and the order and copies of a delivery of the whole log.
    picks: Vec<usize>,
}

fn case(restarts: bool) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(step(restarts), 0..=STEPS_MAX),
        prop::collection::vec(any::<usize>(), 2..=3 * STEPS_MAX),
    )
        .prop_map(|(steps, picks)| Case { steps, picks })
}

fn merged(left: &Rga, right: &Rga) -> Rga {
    let mut result = left.clone();
    result.merge(right, &mut FixedCoin(false));
    result
}

fn applied(start: &Rga, ops: impl IntoIterator<Item = ListOp>) -> Rga {
    let mut state = start.clone();
    for op in ops {
        state.apply(&op, &mut FixedCoin(false));
    }
    state
}

/// The log applied in the order written, to an empty list.
fn in_log_order(world: &World) -> Rga {
    applied(&Rga::new(), world.log.iter().map(|(_, op)| *op))
}

/// Equal states must have equal views and lengths.
fn assert_same(left: &Rga, right: &Rga) -> Result<(), TestCaseError> {
    prop_assert_eq!(left, right);
    prop_assert_eq!(left.view(), right.view());
    prop_assert_eq!(left.len(), right.len());
    prop_assert_eq!(left.time_max(), right.time_max());
    Ok(())
}

fn merge_is_commutative(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    let [a, b, c] = &world.replicas[..] else {
        unreachable!()
    };
    assert_same(&merged(a, b), &merged(b, a))?;
    assert_same(&merged(a, c), &merged(c, a))?;
    assert_same(
        &merged(b, &world.remembered[0]),
        &merged(&world.remembered[0], b),
    )
}

fn merge_is_associative(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    let [a, b, c] = &world.replicas[..] else {
        unreachable!()
    };
    assert_same(&merged(&merged(a, b), c), &merged(a, &merged(b, c)))
}

/// Every path a merge may take gives one state.
fn merge_paths_agree(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    for (i, a) in world.replicas.iter().enumerate() {
        for b in world.replicas.iter().chain(&world.remembered).skip(i) {
            let chosen = merged(a, b);
            let mut rebuilt = a.clone();
            rebuilt.merge_by_rebuilding(b);
            assert_same(&rebuilt, &chosen)?;
            let mut walked = a.clone();
            walked.merge_with_limits(b, 0, 0);
            assert_same(&walked, &chosen)?;
        }
    }
    Ok(())
}

fn merge_is_idempotent(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    for replica in &world.replicas {
        assert_same(&merged(replica, replica), replica)?;
    }
    Ok(())
}

/// Merging either operand into a merge, and the state before an op into the state after it,
/// changes nothing.
fn merge_and_apply_are_inflationary(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    let [a, b, _] = &world.replicas[..] else {
        unreachable!()
    };
    let joined = merged(a, b);
    assert_same(&merged(&joined, a), &joined)?;
    assert_same(&merged(&joined, b), &joined)?;
    if let Some((_, op)) = world.log.get(case.picks[0] % world.log.len().max(1)) {
        let after = applied(a, [*op]);
        assert_same(&merged(&after, a), &after)?;
    }
    Ok(())
}

/// Any two ops of the log commute, from any replica's state: an op whose element or reference
/// has not arrived waits, so "concurrent" is every pair here.
fn ops_commute(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    if world.log.is_empty() {
        return Ok(());
    }
    let x = world.log[case.picks[0] % world.log.len()].1;
    let y = world.log[case.picks[1] % world.log.len()].1;
    for start in &world.replicas {
        assert_same(&applied(start, [x, y]), &applied(start, [y, x]))?;
    }
    Ok(())
}

/// The simulator hands duplicates to apply: a second copy changes nothing.
fn apply_is_idempotent(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    for (_, op) in &world.log {
        for start in &world.replicas {
            let once = applied(start, [*op]);
            assert_same(&applied(&once, [*op]), &once)?;
        }
    }
    Ok(())
}

/// The log delivered in an order the case picks, each op once or more, to an empty replica,
/// gives the state the log applied in order gives; merging every replica gives no more, and the
/// same when no replica lost its state.
fn any_delivery_order_reaches_the_merge(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    let reference = in_log_order(&world);
    let mut order: Vec<ListOp> = world.log.iter().map(|(_, op)| *op).collect();
    // A permutation from the picks (Fisher-Yates), then duplicates of some.
    for i in (1..order.len()).rev() {
        order.swap(i, case.picks[i % case.picks.len()] % (i + 1));
    }
    let duplicates: Vec<ListOp> = case
        .picks
        .iter()
        .take(order.len() / 2)
        .map(|pick| order[pick % order.len()])
        .collect();
    for (i, op) in duplicates.into_iter().enumerate() {
        let at = case.picks[(i + 1) % case.picks.len()] % (order.len() + 1);
        order.insert(at, op);
    }
    assert_same(&applied(&Rga::new(), order), &reference)?;
    let everything = world
        .replicas
        .iter()
        .fold(Rga::new(), |all, replica| merged(&all, replica));
    assert_same(&merged(&reference, &everything), &reference)?;
    if !world.restarted {
        assert_same(&everything, &reference)?;
    }
    Ok(())
}

/// A replica that merged another as it was remembered gets, from the other's delta since that
/// version, what it would get from the other's whole state; and a delta since 0 is everything.
fn delta_merge_equals_full_merge(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    for (from, now) in world.replicas.iter().enumerate() {
        let then = &world.remembered[from];
        if world.restarted_since[from] {
            // Its versions started over.
            continue;
        }
        let to = &world.replicas[(from + 1) % REPLICAS];
        let peer = merged(to, then);
        assert_same(
            &merged(&peer, &now.delta_since(then.version())),
            &merged(&peer, now),
        )?;
        assert_same(&merged(&Rga::new(), &now.delta_since(0)), now)?;
    }
    Ok(())
}

fn views_compare_in_place(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    let [a, b, _] = &world.replicas[..] else {
        unreachable!()
    };
    prop_assert!(a.view_matches(&a.view()));
    prop_assert_eq!(a.view_matches(&b.view()), a.view() == b.view());
    if a.view() == b.view() {
        prop_assert_eq!(a.view_digest(), b.view_digest());
    }
    prop_assert_eq!(a.view().len(), a.len());
    Ok(())
}

/// The sequential specification: the ops in stamp order (the log's order between equal
/// stamps), each insert immediately after the element it names (or first), each delete hiding
/// its element. Independent of the RGA's own code.
fn sequential(log: &[(Stamp, ListOp)]) -> Vec<u64> {
    let mut ordered: Vec<(Stamp, usize, ListOp)> = log
        .iter()
        .enumerate()
        .map(|(index, (stamp, op))| (*stamp, index, *op))
        .collect();
    ordered.sort_by_key(|(stamp, index, _)| (*stamp, *index));
    // (id, value, visible)
    let mut list: Vec<(ElemId, u64, bool)> = Vec::new();
    for (_, _, op) in ordered {
        match op {
            ListOp::Insert { id, after, value } => {
                if list.iter().any(|(e, _, _)| *e == id) {
                    continue;
                }
                let at = match after {
                    None => 0,
                    Some(after) => {
                        list.iter()
                            .position(|(e, _, _)| *e == after)
                            .expect("causal stamps: a reference comes first in stamp order")
                            + 1
                    }
                };
                list.insert(at, (id, value, true));
            }
            ListOp::Delete { target } => {
                let element = list
                    .iter_mut()
                    .find(|(e, _, _)| *e == target)
                    .expect("causal stamps: an element comes before its delete");
                element.2 = false;
            }
            ListOp::Noop => {}
        }
    }
    list.into_iter()
        .filter(|(_, _, visible)| *visible)
        .map(|(_, value, _)| value)
        .collect()
}

fn merged_list_is_the_sequential_specification(case: &Case) -> Result<(), TestCaseError> {
    let world = run(&case.steps);
    prop_assume!(!world.restarted);
    let everything = world
        .replicas
        .iter()
        .fold(Rga::new(), |all, replica| merged(&all, replica));
    prop_assert_eq!(everything.view(), sequential(&world.log));
    Ok(())
}

/// Where a failure would be persisted (the file exists only once one has).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/list_laws.txt"
);

/// Cases per law and per kind of history.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    }
}

macro_rules! laws_hold {
    ($module:ident, $restarts:expr, [$($law:ident),+ $(,)?]) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(config())]
                $(
                    #[test]
                    fn $law(case in case($restarts)) {
                        super::$law(&case)?;
                    }
                )+
            }
        }
    };
}

laws_hold!(
    rga,
    false,
    [
        merge_is_commutative,
        merge_is_associative,
        merge_is_idempotent,
        merge_paths_agree,
        merge_and_apply_are_inflationary,
        ops_commute,
        apply_is_idempotent,
        any_delivery_order_reaches_the_merge,
        delta_merge_equals_full_merge,
        views_compare_in_place,
        merged_list_is_the_sequential_specification,
    ]
);

laws_hold!(
    rga_with_restarts,
    true,
    [
        merge_is_commutative,
        merge_is_associative,
        merge_is_idempotent,
        merge_paths_agree,
        merge_and_apply_are_inflationary,
        ops_commute,
        apply_is_idempotent,
        any_delivery_order_reaches_the_merge,
        delta_merge_equals_full_merge,
        views_compare_in_place,
    ]
);

/// Histories that test nothing prove nothing: the generated ones must often hold concurrent
/// inserts (equal stamp times from different replicas) and inserts that waited for their
/// reference.
#[test]
fn generated_histories_exercise_the_hard_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    const SAMPLES: usize = 500;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = case(false);
    let (mut ties, mut waited) = (0, 0);
    for _ in 0..SAMPLES {
        let world = run(&strategy.new_tree(&mut runner).unwrap().current().steps);
        let inserts: Vec<Stamp> = world
            .log
            .iter()
            .filter(|(_, op)| matches!(op, ListOp::Insert { .. }))
            .map(|(stamp, _)| *stamp)
            .collect();
        ties += usize::from(inserts.iter().any(|x| {
            inserts
                .iter()
                .any(|y| x.time == y.time && x.replica != y.replica)
        }));
        waited += usize::from(world.waited);
    }
    println!("tied: {ties}, waited: {waited} of {SAMPLES}");
    assert!(ties > SAMPLES / 4, "{ties}");
    assert!(waited > SAMPLES / 4, "{waited}");
}
