//! The CRDT laws as property tests (oracle 4 of the design), for the LWW grid and the LWW-element
//! dictionary under every policy they offer.
//!
//! Every law is one generic function over a [`Case`]: the histories of up to three replicas, two
//! extra ops, a few ops that happen later, and the seed of the coin that the `random` tie-break
//! flips. A law uses the parts it needs; proptest shrinks the parts it ignores to nothing, so a
//! counterexample names only the states that break the law.
//!
//! States are built by applying generated ops to fresh replicas. The key space, the stamp times, the
//! replica ids and the values are all tiny, so that two writes to the same key at the same stamp time
//! (the only situation a tie-break decides) turn up often; `generated_cases_tie_often` pins how often.
//!
//! The correct policies (`peer-id`, under either dictionary bias) must satisfy every law in 1,000
//! cases each. The reproductions of real bugs (`random` and `keep-local`) must not: for each law a
//! reproduction breaks, a named test runs the law through a seeded [`TestRunner`], asserts that
//! proptest finds a counterexample, checks the shape of the shrunk counterexample, and persists its
//! seed under `proptest-regressions/laws/` so that the next run replays it first. The laws a
//! reproduction keeps are run as ordinary properties, so this file states exactly what each bug breaks.
//! The minimal counterexamples are also pinned as data in plain regression tests at the end.

use std::fmt::Debug;

use converge_crdt::{
    Bias, Coin, DeltaCrdt, DictOp, FixedCoin, GridOp, LwwDict, LwwDictConfig, LwwGrid,
    LwwGridConfig, OpCrdt, Stamp, StateCrdt, TieBreak,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{
    noop_result_cache, Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError,
    TestRng, TestRunner,
};

// ---------------------------------------------------------------------------------------------------
// A deterministic coin
// ---------------------------------------------------------------------------------------------------

/// A coin whose flips come from a SplitMix64 stream over a seed. The `random` tie-break flips it;
/// the seed is part of every generated case, so a failing case replays with the same flips, and no
/// test ever touches global randomness.
#[derive(Clone, Debug)]
struct SplitMixCoin {
    state: u64,
}

impl SplitMixCoin {
    fn new(seed: u64) -> Self {
        SplitMixCoin { state: seed }
    }
}

impl Coin for SplitMixCoin {
    fn flip(&mut self) -> bool {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        mixed & 1 == 1
    }
}

// ---------------------------------------------------------------------------------------------------
// Generated cases
// ---------------------------------------------------------------------------------------------------

/// Stamp times are drawn from this range: small, so that equal times are frequent.
const TIME_END: u64 = 4;
/// Replica ids are drawn from this range.
const REPLICA_END: u32 = 3;
/// Values are drawn from this range.
const VALUE_END: u64 = 3;
/// Dictionary keys are drawn from this range.
const DICT_KEY_END: u32 = 4;
/// The grid under test is 2 x 2, so four cells.
const GRID_ROWS: u32 = 2;
const GRID_COLS: u32 = 2;
/// The longest history a generated replica applies.
const HISTORY_LEN_MAX: usize = 6;

/// Everything a law may need. Laws use some of the fields; the rest shrink to nothing.
#[derive(Clone, Debug)]
struct Case<Op> {
    /// The ops each of three replicas applied, in order, starting from an empty state.
    a: Vec<Op>,
    b: Vec<Op>,
    c: Vec<Op>,
    /// Two ops for the laws about single updates.
    first_op: Op,
    second_op: Op,
    /// Ops that a replica applies after a point of interest (a remembered version, say).
    later: Vec<Op>,
    /// Seeds every coin of the case: building the states and each side of the law.
    coin_seed: u64,
}

fn stamp() -> impl Strategy<Value = Stamp> {
    (0..TIME_END, 0..REPLICA_END).prop_map(|(time, replica)| Stamp::new(time, replica))
}

fn grid_op() -> BoxedStrategy<GridOp> {
    (
        0..GRID_ROWS * GRID_COLS,
        proptest::option::weighted(0.75, 0..VALUE_END),
        stamp(),
    )
        .prop_map(|(cell, value, stamp)| GridOp { cell, value, stamp })
        .boxed()
}

fn dict_op() -> BoxedStrategy<DictOp> {
    prop_oneof![
        3 => (0..DICT_KEY_END, 0..VALUE_END, stamp())
            .prop_map(|(key, value, stamp)| DictOp::Add { key, value, stamp }),
        1 => (0..DICT_KEY_END, stamp()).prop_map(|(key, stamp)| DictOp::Remove { key, stamp }),
    ]
    .boxed()
}

fn case<Op: Clone + Debug + 'static>(op: BoxedStrategy<Op>) -> impl Strategy<Value = Case<Op>> {
    let history = || proptest::collection::vec(op.clone(), 0..=HISTORY_LEN_MAX);
    (
        history(),
        history(),
        history(),
        op.clone(),
        op.clone(),
        history(),
        any::<u64>(),
    )
        .prop_map(|(a, b, c, first_op, second_op, later, coin_seed)| Case {
            a,
            b,
            c,
            first_op,
            second_op,
            later,
            coin_seed,
        })
}

fn grid(tie_break: TieBreak) -> LwwGrid {
    LwwGrid::new(LwwGridConfig {
        rows: GRID_ROWS,
        cols: GRID_COLS,
        tie_break,
    })
}

fn dict(bias: Bias, tie_break: TieBreak) -> LwwDict {
    LwwDict::new(LwwDictConfig { bias, tie_break })
}

/// A replica that applied `history` to `empty`, in order.
fn replica<T: OpCrdt>(empty: &T, history: &[T::Op], coin_seed: u64) -> T {
    let mut coin = SplitMixCoin::new(coin_seed);
    let mut state = empty.clone();
    for op in history {
        state.apply(op, &mut coin);
    }
    state
}

/// `left ⊔ right`, flipping a fresh coin seeded with `coin_seed`. Both sides of a law use fresh
/// coins with the same seed, so a law that fails under `random` fails because the order of the
/// operands matters, not because the two sides saw different flips for the same decision.
fn merged<T: StateCrdt>(left: &T, right: &T, coin_seed: u64) -> T {
    let mut result = left.clone();
    result.merge(right, &mut SplitMixCoin::new(coin_seed));
    result
}

// ---------------------------------------------------------------------------------------------------
// The laws
// ---------------------------------------------------------------------------------------------------

/// The signature every law has, so that tests can pass laws around by name.
type Law<T> = fn(&T, &Case<<T as OpCrdt>::Op>) -> Result<(), TestCaseError>;

/// a ⊔ b == b ⊔ a.
fn merge_is_commutative<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let a = replica(empty, &case.a, case.coin_seed);
    let b = replica(empty, &case.b, case.coin_seed);
    prop_assert_eq!(
        merged(&a, &b, case.coin_seed),
        merged(&b, &a, case.coin_seed)
    );
    Ok(())
}

/// (a ⊔ b) ⊔ c == a ⊔ (b ⊔ c). Each side flips one coin across both of its merges.
fn merge_is_associative<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let a = replica(empty, &case.a, case.coin_seed);
    let b = replica(empty, &case.b, case.coin_seed);
    let c = replica(empty, &case.c, case.coin_seed);

    let mut left_coin = SplitMixCoin::new(case.coin_seed);
    let mut left = a.clone();
    left.merge(&b, &mut left_coin);
    left.merge(&c, &mut left_coin);

    let mut right_coin = SplitMixCoin::new(case.coin_seed);
    let mut b_then_c = b;
    b_then_c.merge(&c, &mut right_coin);
    let mut right = a;
    right.merge(&b_then_c, &mut right_coin);

    prop_assert_eq!(left, right);
    Ok(())
}

/// A view compares in place as it renders: `view_matches` agrees with comparing rendered views,
/// for the state's own view and for another replica's; equal views have equal digests.
fn views_compare_in_place<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let a = replica(empty, &case.a, case.coin_seed);
    let b = replica(empty, &case.b, case.coin_seed);
    prop_assert!(a.view_matches(&a.view()));
    prop_assert_eq!(a.view_matches(&b.view()), a.view() == b.view());
    if a.view() == b.view() {
        prop_assert_eq!(a.view_digest(), b.view_digest());
    }
    Ok(())
}

/// a ⊔ a == a.
fn merge_is_idempotent<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let a = replica(empty, &case.a, case.coin_seed);
    prop_assert_eq!(merged(&a, &a, case.coin_seed), a);
    Ok(())
}

/// Every applied op leaves a state at least as large as before: merging the state before the op
/// into the state after it changes nothing. Checked after each of a run of ops.
fn apply_is_inflationary<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let mut coin = SplitMixCoin::new(case.coin_seed);
    let mut state = replica(empty, &case.a, case.coin_seed);
    for op in std::iter::once(&case.first_op).chain(&case.later) {
        let before = state.clone();
        state.apply(op, &mut coin);
        prop_assert_eq!(merged(&state, &before, case.coin_seed), state.clone());
    }
    Ok(())
}

/// A merge leaves a state at least as large as both operands: merging either operand into the result
/// changes nothing.
fn merge_is_inflationary<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let a = replica(empty, &case.a, case.coin_seed);
    let b = replica(empty, &case.b, case.coin_seed);
    let joined = merged(&a, &b, case.coin_seed);
    prop_assert_eq!(merged(&joined, &a, case.coin_seed), joined.clone());
    prop_assert_eq!(merged(&joined, &b, case.coin_seed), joined);
    Ok(())
}

/// Two ops applied in either order give the same state. Every pair of LWW ops is concurrent in the
/// sense that matters: neither op's effect depends on the other having been applied.
fn concurrent_ops_commute<T: OpCrdt>(empty: &T, case: &Case<T::Op>) -> Result<(), TestCaseError> {
    let start = replica(empty, &case.a, case.coin_seed);

    let mut first_then_second = start.clone();
    let mut coin = SplitMixCoin::new(case.coin_seed);
    first_then_second.apply(&case.first_op, &mut coin);
    first_then_second.apply(&case.second_op, &mut coin);

    let mut second_then_first = start;
    let mut coin = SplitMixCoin::new(case.coin_seed);
    second_then_first.apply(&case.second_op, &mut coin);
    second_then_first.apply(&case.first_op, &mut coin);

    prop_assert_eq!(first_then_second, second_then_first);
    Ok(())
}

/// A peer `b` that already merged replica `a` as it stood at version `v` gets the same state from
/// merging `a.delta_since(v)` as from merging all of `a`. After `v`, replica `a` both applies ops of
/// its own and merges a third replica `c`, so the delta must carry changes from either source.
fn delta_merge_equals_full_merge<T: OpCrdt + DeltaCrdt>(
    empty: &T,
    case: &Case<T::Op>,
) -> Result<(), TestCaseError> {
    let mut coin = SplitMixCoin::new(case.coin_seed);
    let mut a = replica(empty, &case.a, case.coin_seed);
    let seen = a.version();
    let a_at_seen = a.clone();
    for op in &case.later {
        a.apply(op, &mut coin);
    }
    a.merge(&replica(empty, &case.c, case.coin_seed), &mut coin);

    let mut b = replica(empty, &case.b, case.coin_seed);
    b.merge(&a_at_seen, &mut coin);

    prop_assert_eq!(
        merged(&b, &a.delta_since(seen), case.coin_seed),
        merged(&b, &a, case.coin_seed)
    );
    Ok(())
}

/// A peer that has nothing gets all of `a` from `a.delta_since(0)`.
fn delta_since_zero_is_the_whole_state<T: OpCrdt + DeltaCrdt>(
    empty: &T,
    case: &Case<T::Op>,
) -> Result<(), TestCaseError> {
    let mut a = replica(empty, &case.a, case.coin_seed);
    a.merge(
        &replica(empty, &case.b, case.coin_seed),
        &mut SplitMixCoin::new(case.coin_seed),
    );
    prop_assert_eq!(merged(empty, &a.delta_since(0), case.coin_seed), a);
    Ok(())
}

/// A law that holds only because its cases never meet a tie proves nothing about tie-breaks. This
/// pins that the generators make ties common: in at least one case in ten (about a third for the grid
/// and a sixth for the dictionary), replicas `a` and `b` hold two writes that only a tie-break can
/// order.
#[test]
fn generated_cases_tie_often() {
    fn share_of_tied_cases<Op: Clone + Debug + 'static>(
        op: BoxedStrategy<Op>,
        tie: fn(&Op, &Op) -> bool,
    ) -> f64 {
        const SAMPLES: usize = 1000;
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &SEARCH_SEED),
        );
        let strategy = case(op);
        let tied = (0..SAMPLES)
            .filter(|_| {
                let case = strategy.new_tree(&mut runner).unwrap().current();
                case.a.iter().any(|x| case.b.iter().any(|y| tie(x, y)))
            })
            .count();
        tied as f64 / SAMPLES as f64
    }

    let grid_share = share_of_tied_cases(grid_op(), grid_tie);
    let dict_share = share_of_tied_cases(dict_op(), dict_tie);
    println!("tied cases: grid {grid_share}, dictionary {dict_share}");
    assert!(grid_share > 0.1, "only {grid_share} of grid cases tie");
    assert!(
        dict_share > 0.1,
        "only {dict_share} of dictionary cases tie"
    );
}

// ---------------------------------------------------------------------------------------------------
// Laws that must hold
// ---------------------------------------------------------------------------------------------------

/// Where a failure of a law that must hold would be persisted (the file exists only once one has).
const HOLDING_LAWS_REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/laws/holding_laws.txt"
);

fn holding_law_config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            HOLDING_LAWS_REGRESSIONS,
        ))),
        ..ProptestConfig::default()
    }
}

/// One module of property tests per CRDT and policy, one test per law, named after the law.
macro_rules! laws_hold {
    ($module:ident, $empty:expr, $op:expr, [$($law:ident),+ $(,)?]) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(holding_law_config())]
                $(
                    #[test]
                    fn $law(case in case($op)) {
                        super::$law(&$empty, &case)?;
                    }
                )+
            }
        }
    };
}

laws_hold!(
    grid_peer_id,
    grid(TieBreak::PeerId),
    grid_op(),
    [
        merge_is_commutative,
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        concurrent_ops_commute,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

laws_hold!(
    dict_add_bias_peer_id,
    dict(Bias::Add, TieBreak::PeerId),
    dict_op(),
    [
        merge_is_commutative,
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        concurrent_ops_commute,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

laws_hold!(
    dict_remove_bias_peer_id,
    dict(Bias::Remove, TieBreak::PeerId),
    dict_op(),
    [
        merge_is_commutative,
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        concurrent_ops_commute,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

// `keep-local` keeps, at equal times, whichever write a replica saw first. That is a deterministic
// function of the order of the operands, and it is the same function on both sides of each of these
// laws, so they hold; only the laws that swap the order (commutativity, commuting ops) break.
laws_hold!(
    grid_keep_local,
    grid(TieBreak::KeepLocal),
    grid_op(),
    [
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

laws_hold!(
    dict_add_bias_keep_local,
    dict(Bias::Add, TieBreak::KeepLocal),
    dict_op(),
    [
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

laws_hold!(
    dict_remove_bias_keep_local,
    dict(Bias::Remove, TieBreak::KeepLocal),
    dict_op(),
    [
        merge_is_associative,
        merge_is_idempotent,
        views_compare_in_place,
        apply_is_inflationary,
        merge_is_inflationary,
        delta_merge_equals_full_merge,
        delta_since_zero_is_the_whole_state,
    ]
);

// `random` flips a coin only for two different writes at equal times. Merging a state into itself, or
// into an empty peer, never meets such a pair, so these two laws hold; every other law breaks.
laws_hold!(
    grid_random,
    grid(TieBreak::Random),
    grid_op(),
    [
        merge_is_idempotent,
        views_compare_in_place,
        delta_since_zero_is_the_whole_state
    ]
);

laws_hold!(
    dict_add_bias_random,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    [
        merge_is_idempotent,
        views_compare_in_place,
        delta_since_zero_is_the_whole_state
    ]
);

laws_hold!(
    dict_remove_bias_random,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    [
        merge_is_idempotent,
        views_compare_in_place,
        delta_since_zero_is_the_whole_state
    ]
);

// ---------------------------------------------------------------------------------------------------
// Laws the reproductions break
// ---------------------------------------------------------------------------------------------------

/// The seed of the runner that looks for counterexamples. Fixed, so the search and its shrunk result
/// are the same on every run and every machine.
const SEARCH_SEED: [u8; 32] = *b"converge crdt law counterexample";

/// Runs `law` for the policy of `empty` through a seeded runner whose settings ignore the
/// environment, and returns the shrunk counterexample.
///
/// # Panics
/// If the law holds for every case, or the run ends in anything but a failing case.
fn shrunk_counterexample<T: OpCrdt>(
    regression_file: &'static str,
    empty: T,
    op: BoxedStrategy<T::Op>,
    law: Law<T>,
) -> Case<T::Op>
where
    T::Op: 'static,
{
    let config = Config {
        cases: 1000,
        max_local_rejects: 65_536,
        max_global_rejects: 1024,
        max_flat_map_regens: 1_000_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regression_file))),
        source_file: None,
        test_name: None,
        fork: false,
        timeout: 0,
        max_shrink_time: 0,
        max_shrink_iters: 100_000,
        max_default_size_range: 100,
        result_cache: noop_result_cache,
        verbose: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        // The runner's generator is passed in below, seeded with `SEARCH_SEED`; no seed from the
        // configuration or the environment is read.
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEARCH_SEED),
    );
    match runner.run(&case(op), |case| law(&empty, &case)) {
        Err(TestError::Fail(_, counterexample)) => counterexample,
        Err(TestError::Abort(reason)) => panic!("the search aborted: {reason}"),
        Ok(()) => panic!("no counterexample in 1,000 cases: the law held for this policy"),
    }
}

/// Two grid writes that only a tie-break can order: the same cell, the same stamp time, and not the
/// same write.
fn grid_tie(x: &GridOp, y: &GridOp) -> bool {
    x.cell == y.cell && x.stamp.time == y.stamp.time && (x.stamp, x.value) != (y.stamp, y.value)
}

/// Two dictionary adds that only a tie-break can order. Removes never tie: they are ordered by the
/// whole stamp, replica id included, whatever the policy.
fn dict_tie(x: &DictOp, y: &DictOp) -> bool {
    match (x, y) {
        (
            DictOp::Add {
                key: x_key,
                value: x_value,
                stamp: x_stamp,
            },
            DictOp::Add {
                key: y_key,
                value: y_value,
                stamp: y_stamp,
            },
        ) => {
            x_key == y_key
                && x_stamp.time == y_stamp.time
                && (x_stamp, x_value) != (y_stamp, y_value)
        }
        _ => false,
    }
}

/// Asserts the shape every commutativity counterexample must shrink to: replica `a` applied one op,
/// replica `b` one op, the two tie, and nothing else is left.
fn assert_one_tied_write_each<Op: Debug>(case: &Case<Op>, tie: fn(&Op, &Op) -> bool) {
    assert_eq!(case.a.len(), 1, "{case:?}");
    assert_eq!(case.b.len(), 1, "{case:?}");
    assert!(tie(&case.a[0], &case.b[0]), "{case:?}");
    assert!(case.c.is_empty() && case.later.is_empty(), "{case:?}");
}

/// Asserts that a counterexample holds at least one pair of tied writes among the ops it applies.
fn assert_holds_a_tie<Op: Debug>(case: &Case<Op>, tie: fn(&Op, &Op) -> bool) {
    let ops: Vec<&Op> = case
        .a
        .iter()
        .chain(&case.b)
        .chain(&case.c)
        .chain(&case.later)
        .chain([&case.first_op, &case.second_op])
        .collect();
    let tied = ops
        .iter()
        .enumerate()
        .any(|(index, x)| ops[index + 1..].iter().any(|y| tie(x, y)));
    assert!(tied, "a counterexample without a tie: {case:?}");
}

/// Asserts the shape every counterexample to commuting ops must shrink to: two tied ops applied to
/// an empty replica.
fn assert_tied_ops_on_an_empty_replica<Op: Debug>(case: &Case<Op>, tie: fn(&Op, &Op) -> bool) {
    assert!(case.a.is_empty(), "{case:?}");
    assert!(tie(&case.first_op, &case.second_op), "{case:?}");
}

/// One test per law a reproduction breaks, named after the bug. The test's name is also the name of
/// its persistence file, and `$shape` checks the shrunk counterexample.
macro_rules! law_breaks {
    ($test:ident, $empty:expr, $op:expr, $law:ident, $shape:expr) => {
        #[test]
        fn $test() {
            let counterexample = shrunk_counterexample(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/proptest-regressions/laws/",
                    stringify!($test),
                    ".txt"
                ),
                $empty,
                $op,
                $law,
            );
            let shape: fn(&Case<_>) = $shape;
            shape(&counterexample);
        }
    };
}

// `keep-local`: each replica keeps the write it saw first, so the order of the operands decides.
law_breaks!(
    keep_local_grid_breaks_commutativity,
    grid(TieBreak::KeepLocal),
    grid_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, grid_tie)
);
law_breaks!(
    keep_local_grid_ops_do_not_commute,
    grid(TieBreak::KeepLocal),
    grid_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, grid_tie)
);
law_breaks!(
    keep_local_dict_breaks_commutativity,
    dict(Bias::Add, TieBreak::KeepLocal),
    dict_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, dict_tie)
);
law_breaks!(
    keep_local_dict_remove_bias_breaks_commutativity,
    dict(Bias::Remove, TieBreak::KeepLocal),
    dict_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, dict_tie)
);
law_breaks!(
    keep_local_dict_ops_do_not_commute,
    dict(Bias::Add, TieBreak::KeepLocal),
    dict_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, dict_tie)
);
law_breaks!(
    keep_local_dict_remove_bias_ops_do_not_commute,
    dict(Bias::Remove, TieBreak::KeepLocal),
    dict_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, dict_tie)
);

// `random`: each receiver flips its own coin, so two merges of the same tie can disagree.
law_breaks!(
    random_tie_break_breaks_commutativity,
    grid(TieBreak::Random),
    grid_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, grid_tie)
);
law_breaks!(
    random_tie_break_breaks_associativity,
    grid(TieBreak::Random),
    grid_op(),
    merge_is_associative,
    |case| assert_holds_a_tie(case, grid_tie)
);
law_breaks!(
    random_tie_break_breaks_apply_inflation,
    grid(TieBreak::Random),
    grid_op(),
    apply_is_inflationary,
    |case| assert_holds_a_tie(case, grid_tie)
);
law_breaks!(
    random_tie_break_breaks_merge_inflation,
    grid(TieBreak::Random),
    grid_op(),
    merge_is_inflationary,
    |case| assert_holds_a_tie(case, grid_tie)
);
law_breaks!(
    random_tie_break_ops_do_not_commute,
    grid(TieBreak::Random),
    grid_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, grid_tie)
);
law_breaks!(
    random_tie_break_breaks_delta_equivalence,
    grid(TieBreak::Random),
    grid_op(),
    delta_merge_equals_full_merge,
    |case| assert_holds_a_tie(case, grid_tie)
);
law_breaks!(
    random_tie_break_dict_breaks_commutativity,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_breaks_commutativity,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    merge_is_commutative,
    |case| assert_one_tied_write_each(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_breaks_associativity,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    merge_is_associative,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_breaks_associativity,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    merge_is_associative,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_breaks_apply_inflation,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    apply_is_inflationary,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_breaks_apply_inflation,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    apply_is_inflationary,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_breaks_merge_inflation,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    merge_is_inflationary,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_breaks_merge_inflation,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    merge_is_inflationary,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_ops_do_not_commute,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_ops_do_not_commute,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    concurrent_ops_commute,
    |case| assert_tied_ops_on_an_empty_replica(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_breaks_delta_equivalence,
    dict(Bias::Add, TieBreak::Random),
    dict_op(),
    delta_merge_equals_full_merge,
    |case| assert_holds_a_tie(case, dict_tie)
);
law_breaks!(
    random_tie_break_dict_remove_bias_breaks_delta_equivalence,
    dict(Bias::Remove, TieBreak::Random),
    dict_op(),
    delta_merge_equals_full_merge,
    |case| assert_holds_a_tie(case, dict_tie)
);

// ---------------------------------------------------------------------------------------------------
// The shrunk counterexamples, pinned as data
// ---------------------------------------------------------------------------------------------------

fn clear(cell: u32, time: u64, replica: u32) -> GridOp {
    GridOp {
        cell,
        value: None,
        stamp: Stamp::new(time, replica),
    }
}

fn add(key: u32, value: u64, time: u64, replica: u32) -> DictOp {
    DictOp::Add {
        key,
        value,
        stamp: Stamp::new(time, replica),
    }
}

/// Merges `b` into `a` and `a` into `b` with a coin that always lands on `heads`, and returns both
/// results.
fn both_orders<T: StateCrdt>(a: &T, b: &T, heads: bool) -> (T, T) {
    let mut a_then_b = a.clone();
    a_then_b.merge(b, &mut FixedCoin(heads));
    let mut b_then_a = b.clone();
    b_then_a.merge(a, &mut FixedCoin(heads));
    (a_then_b, b_then_a)
}

/// The shrunk counterexample of `keep_local_grid_breaks_commutativity`: replicas 0 and 1 both clear
/// cell 2 at time 1. Each keeps its own write when it merges the other's, so the two merge orders end
/// with different stamps in the cell. The view is the same (both cleared), which is why only the
/// law on replicated state, not a comparison of views, catches this pair.
#[test]
fn regression_keep_local_grid_equal_time_clears_keep_the_left_stamp() {
    let a = replica(&grid(TieBreak::KeepLocal), &[clear(2, 1, 0)], 0);
    let b = replica(&grid(TieBreak::KeepLocal), &[clear(2, 1, 1)], 0);
    let (a_then_b, b_then_a) = both_orders(&a, &b, false);
    assert_ne!(a_then_b, b_then_a);
    assert_eq!(
        a_then_b.cell(2).map(|cell| cell.stamp),
        Some(Stamp::new(1, 0))
    );
    assert_eq!(
        b_then_a.cell(2).map(|cell| cell.stamp),
        Some(Stamp::new(1, 1))
    );

    // The same pair under the correct policy: replica 1's write wins in both orders.
    let a = replica(&grid(TieBreak::PeerId), &[clear(2, 1, 0)], 0);
    let b = replica(&grid(TieBreak::PeerId), &[clear(2, 1, 1)], 0);
    let (a_then_b, b_then_a) = both_orders(&a, &b, false);
    assert_eq!(a_then_b, b_then_a);
    assert_eq!(
        a_then_b.cell(2).map(|cell| cell.stamp),
        Some(Stamp::new(1, 1))
    );
}

/// The shrunk counterexample of `random_tie_break_breaks_commutativity`: the same pair of clears.
/// Whichever way the coin lands, it lands the same way for both merge orders, and "keep the incoming
/// write" (or "keep the local one") names a different write in each order.
#[test]
fn regression_random_grid_equal_time_clears_disagree_whatever_the_coin() {
    let a = replica(&grid(TieBreak::Random), &[clear(2, 1, 0)], 0);
    let b = replica(&grid(TieBreak::Random), &[clear(2, 1, 1)], 0);
    for heads in [false, true] {
        let (a_then_b, b_then_a) = both_orders(&a, &b, heads);
        assert_ne!(a_then_b, b_then_a, "coin always {heads}");
    }
}

/// The shrunk counterexample of `keep_local_dict_breaks_commutativity` (under either bias): two adds
/// of key 0 at the same stamp `(3, 0)` with values 2 and 0. Each side keeps its own value, so here
/// the views diverge too: a user reads 2 on one replica and 0 on the other.
#[test]
fn regression_keep_local_dict_equal_stamp_adds_keep_the_left_value() {
    for bias in [Bias::Add, Bias::Remove] {
        let a = replica(&dict(bias, TieBreak::KeepLocal), &[add(0, 2, 3, 0)], 0);
        let b = replica(&dict(bias, TieBreak::KeepLocal), &[add(0, 0, 3, 0)], 0);
        let (a_then_b, b_then_a) = both_orders(&a, &b, false);
        assert_ne!(a_then_b, b_then_a, "{bias:?}");
        assert_eq!(a_then_b.lookup(0), Some(2), "{bias:?}");
        assert_eq!(b_then_a.lookup(0), Some(0), "{bias:?}");

        // Under the correct policy the greater value breaks the tie of identical stamps.
        let a = replica(&dict(bias, TieBreak::PeerId), &[add(0, 2, 3, 0)], 0);
        let b = replica(&dict(bias, TieBreak::PeerId), &[add(0, 0, 3, 0)], 0);
        let (a_then_b, b_then_a) = both_orders(&a, &b, false);
        assert_eq!(a_then_b, b_then_a, "{bias:?}");
        assert_eq!(a_then_b.lookup(0), Some(2), "{bias:?}");
    }
}

/// The shrunk counterexample of `random_tie_break_dict_breaks_commutativity`: the same pair of adds,
/// which disagree whichever way the coin lands.
#[test]
fn regression_random_dict_equal_stamp_adds_disagree_whatever_the_coin() {
    for bias in [Bias::Add, Bias::Remove] {
        let a = replica(&dict(bias, TieBreak::Random), &[add(0, 2, 3, 0)], 0);
        let b = replica(&dict(bias, TieBreak::Random), &[add(0, 0, 3, 0)], 0);
        for heads in [false, true] {
            let (a_then_b, b_then_a) = both_orders(&a, &b, heads);
            assert_ne!(a_then_b, b_then_a, "{bias:?}, coin always {heads}");
            assert_ne!(
                a_then_b.view(),
                b_then_a.view(),
                "{bias:?}, coin always {heads}"
            );
        }
    }
}
