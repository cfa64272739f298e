//! Every state, op, view, clock and config type survives a trip through JSON.
//!
//! Scenario files, recorded runs and counterexamples carry these values as text, so a value that
//! comes back different (a large `u64` rounded through a float, a field the derive skips, a renamed
//! variant) would make a replay diverge from the run it replays. Values are generated over their full
//! ranges, not the small ones the law tests use, so the extremes of every integer are exercised.
//!
//! A replica state must come back equal as replicated state (`PartialEq`), and also keep its local
//! bookkeeping: the same version and the same delta for every version, and the same result when
//! merged with another state, on either side of the merge.

use std::fmt::Debug;

use converge_crdt::clock::Skew;
use converge_crdt::dict::Entry;
use converge_crdt::grid::Cell;
use converge_crdt::{
    Bias, Clock, ClockKind, DeltaCrdt, DictOp, DictView, ElemId, FixedCoin, GridOp, GridView,
    Intent, ListOp, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt, Rga, Stamp, TieBreak,
    UpdateId,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// Encodes `value` as JSON text and decodes it again.
fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let text = serde_json::to_string(value).expect("every value encodes");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{text} does not decode: {error}"))
}

fn assert_round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    value: &T,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&round_trip(value), value);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Strategies over full ranges
// ---------------------------------------------------------------------------------------------------

fn stamp() -> impl Strategy<Value = Stamp> {
    (any::<u64>(), any::<u32>()).prop_map(|(time, replica)| Stamp::new(time, replica))
}

fn tie_break() -> impl Strategy<Value = TieBreak> {
    prop_oneof![
        Just(TieBreak::PeerId),
        Just(TieBreak::Random),
        Just(TieBreak::KeepLocal)
    ]
}

fn bias() -> impl Strategy<Value = Bias> {
    prop_oneof![Just(Bias::Add), Just(Bias::Remove)]
}

fn clock_kind() -> impl Strategy<Value = ClockKind> {
    prop_oneof![
        Just(ClockKind::Lamport),
        Just(ClockKind::LamportLocalOnly),
        Just(ClockKind::PerKeyCounter),
        Just(ClockKind::WallClock),
        Just(ClockKind::Hybrid),
    ]
}

fn skew() -> impl Strategy<Value = Skew> {
    (any::<i64>(), any::<i64>()).prop_map(|(offset_us, drift_ppm)| Skew {
        offset_us,
        drift_ppm,
    })
}

fn clock() -> impl Strategy<Value = Clock> {
    (clock_kind(), skew(), any::<u64>()).prop_map(|(kind, skew, last)| Clock { kind, skew, last })
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(key, value)| Intent::Put { key, value }),
        any::<u32>().prop_map(|key| Intent::Remove { key }),
    ]
}

fn update_id() -> impl Strategy<Value = UpdateId> {
    (any::<u32>(), any::<u32>()).prop_map(|(origin, seq)| UpdateId { origin, seq })
}

fn grid_config() -> impl Strategy<Value = LwwGridConfig> {
    (1..=4u32, 1..=4u32, tie_break()).prop_map(|(rows, cols, tie_break)| LwwGridConfig {
        rows,
        cols,
        tie_break,
    })
}

fn dict_config() -> impl Strategy<Value = LwwDictConfig> {
    (bias(), tie_break()).prop_map(|(bias, tie_break)| LwwDictConfig { bias, tie_break })
}

fn grid_op() -> impl Strategy<Value = GridOp> {
    (any::<u32>(), any::<Option<u64>>(), stamp()).prop_map(|(cell, value, stamp)| GridOp {
        cell,
        value,
        stamp,
    })
}

fn dict_op() -> impl Strategy<Value = DictOp> {
    prop_oneof![
        (any::<u32>(), any::<u64>(), stamp()).prop_map(|(key, value, stamp)| DictOp::Add {
            key,
            value,
            stamp
        }),
        (any::<u32>(), stamp()).prop_map(|(key, stamp)| DictOp::Remove { key, stamp }),
    ]
}

fn cell() -> impl Strategy<Value = Cell> {
    (any::<Option<u64>>(), stamp()).prop_map(|(value, stamp)| Cell { value, stamp })
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<Option<(u64, u32, u64)>>(),
        proptest::option::of(stamp()),
    )
        .prop_map(|(add, remove)| Entry {
            add: add.map(|(time, replica, value)| (Stamp::new(time, replica), value)),
            remove,
        })
}

fn grid_view() -> impl Strategy<Value = GridView> {
    (
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(any::<Option<u64>>(), 0..10),
    )
        .prop_map(|(rows, cols, cells)| GridView { rows, cols, cells })
}

fn dict_view() -> impl Strategy<Value = DictView> {
    proptest::collection::btree_map(any::<u32>(), any::<u64>(), 0..10)
}

/// The ops of one replica's history: intents with the stamps their origin issued. Keys are small so
/// that writes meet; times are small or huge so that ties and the extremes of `u64` both occur.
fn history() -> impl Strategy<Value = Vec<(Intent, Stamp)>> {
    let time = prop_oneof![0..4u64, (u64::MAX - 3)..=u64::MAX];
    let write = (
        prop_oneof![
            (0..6u32, any::<u64>()).prop_map(|(key, value)| Intent::Put { key, value }),
            (0..6u32).prop_map(|key| Intent::Remove { key }),
        ],
        time,
        0..3u32,
    )
        .prop_map(|(intent, time, replica)| (intent, Stamp::new(time, replica)));
    proptest::collection::vec(write, 0..8)
}

/// Applies a history to `empty`, then merges a second replica's history into it, so the state's
/// bookkeeping records changes from both ops and merges.
fn replica<T: OpCrdt<Intent = Intent>>(
    empty: &T,
    own: &[(Intent, Stamp)],
    heard: &[(Intent, Stamp)],
) -> T {
    let build = |history: &[(Intent, Stamp)]| {
        let mut state = empty.clone();
        for (intent, stamp) in history {
            let op = state.prepare(intent, *stamp);
            state.apply(&op, &mut FixedCoin(true));
        }
        state
    };
    let mut state = build(own);
    state.merge(&build(heard), &mut FixedCoin(false));
    state
}

/// Two replicas of one grid shape and policy, so they can merge.
fn two_grids() -> impl Strategy<Value = (LwwGrid, LwwGrid)> {
    (grid_config(), history(), history(), history(), history()).prop_map(
        |(config, own, heard, other_own, other_heard)| {
            let empty = LwwGrid::new(config);
            (
                replica(&empty, &own, &heard),
                replica(&empty, &other_own, &other_heard),
            )
        },
    )
}

/// Two replicas of one dictionary policy, so they can merge.
fn two_dicts() -> impl Strategy<Value = (LwwDict, LwwDict)> {
    (dict_config(), history(), history(), history(), history()).prop_map(
        |(config, own, heard, other_own, other_heard)| {
            let empty = LwwDict::new(config);
            (
                replica(&empty, &own, &heard),
                replica(&empty, &other_own, &other_heard),
            )
        },
    )
}

/// Two lists; a history's stamps may repeat, which the list's element tags tell apart.
fn two_lists() -> impl Strategy<Value = (Rga, Rga)> {
    (history(), history(), history(), history()).prop_map(|(own, heard, other_own, other_heard)| {
        let empty = Rga::new();
        (
            replica(&empty, &own, &heard),
            replica(&empty, &other_own, &other_heard),
        )
    })
}

fn elem_id() -> impl Strategy<Value = ElemId> {
    (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(time, replica, tag)| ElemId {
        time,
        replica,
        tag,
    })
}

fn list_op() -> impl Strategy<Value = ListOp> {
    prop_oneof![
        (elem_id(), proptest::option::of(elem_id()), any::<u64>())
            .prop_map(|(id, after, value)| ListOp::Insert { id, after, value }),
        elem_id().prop_map(|target| ListOp::Delete { target }),
        Just(ListOp::Noop),
    ]
}

/// A decoded state equals the original, keeps its bookkeeping, and merges exactly like it.
fn assert_state_round_trips<T>(original: &T, other: &T) -> Result<(), TestCaseError>
where
    T: DeltaCrdt + Serialize + DeserializeOwned,
{
    let decoded = round_trip(original);
    prop_assert_eq!(&decoded, original);
    prop_assert_eq!(decoded.view(), original.view());
    prop_assert_eq!(decoded.version(), original.version());
    for version in 0..=original.version() {
        prop_assert_eq!(
            decoded.delta_since(version),
            original.delta_since(version),
            "delta since {}",
            version
        );
    }
    for heads in [false, true] {
        let mut decoded_then_other = decoded.clone();
        decoded_then_other.merge(other, &mut FixedCoin(heads));
        let mut original_then_other = original.clone();
        original_then_other.merge(other, &mut FixedCoin(heads));
        prop_assert_eq!(&decoded_then_other, &original_then_other);
        prop_assert_eq!(decoded_then_other.version(), original_then_other.version());

        let mut other_then_decoded = other.clone();
        other_then_decoded.merge(&decoded, &mut FixedCoin(heads));
        let mut other_then_original = other.clone();
        other_then_original.merge(original, &mut FixedCoin(heads));
        prop_assert_eq!(other_then_decoded, other_then_original);
    }
    Ok(())
}

/// Where a failing case would be persisted. Proptest's default looks for `lib.rs` beside the test
/// file, does not find it in `tests/`, and would write next to the source instead; every regression
/// file of this crate lives under `proptest-regressions/`.
fn round_trip_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/serde_round_trip.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(round_trip_config())]

    #[test]
    fn lww_grid_round_trips_and_merges_identically((grid, other) in two_grids()) {
        assert_state_round_trips(&grid, &other)?;
    }

    #[test]
    fn lww_dict_round_trips_and_merges_identically((dict, other) in two_dicts()) {
        assert_state_round_trips(&dict, &other)?;
    }

    #[test]
    fn rga_round_trips_and_merges_identically((list, other) in two_lists()) {
        assert_state_round_trips(&list, &other)?;
    }

    #[test]
    fn list_op_and_view_round_trip(op in list_op(), view in proptest::collection::vec(any::<u64>(), 0..8)) {
        assert_round_trips(&op)?;
        assert_round_trips(&view)?;
    }

    #[test]
    fn grid_op_round_trips(op in grid_op()) {
        assert_round_trips(&op)?;
    }

    #[test]
    fn dict_op_round_trips(op in dict_op()) {
        assert_round_trips(&op)?;
    }

    #[test]
    fn grid_view_round_trips(view in grid_view()) {
        assert_round_trips(&view)?;
    }

    #[test]
    fn dict_view_round_trips(view in dict_view()) {
        assert_round_trips(&view)?;
    }

    #[test]
    fn cell_and_entry_round_trip(cell in cell(), entry in entry()) {
        assert_round_trips(&cell)?;
        assert_round_trips(&entry)?;
    }

    #[test]
    fn clock_round_trips(clock in clock()) {
        assert_round_trips(&clock)?;
        assert_round_trips(&clock.kind)?;
        assert_round_trips(&clock.skew)?;
    }

    #[test]
    fn intent_round_trips(intent in intent()) {
        assert_round_trips(&intent)?;
    }

    #[test]
    fn stamp_and_update_id_round_trip(stamp in stamp(), update_id in update_id()) {
        assert_round_trips(&stamp)?;
        assert_round_trips(&update_id)?;
    }

    #[test]
    fn configs_round_trip(grid_config in grid_config(), dict_config in dict_config()) {
        assert_round_trips(&grid_config)?;
        assert_round_trips(&dict_config)?;
        assert_round_trips(&grid_config.tie_break)?;
        assert_round_trips(&dict_config.bias)?;
    }
}

fn encode<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("every value encodes")
}

/// The spelling users write in scenario files is part of the interface: kebab-case names, a `kind`
/// tag on ops and intents, and config fields that default when absent and are refused when unknown.
#[test]
fn json_spelling_is_pinned() {
    assert_eq!(encode(&TieBreak::KeepLocal), json!("keep-local"));
    assert_eq!(encode(&Bias::Remove), json!("remove"));
    assert_eq!(
        encode(&ClockKind::LamportLocalOnly),
        json!("lamport-local-only")
    );
    assert_eq!(
        encode(&Intent::Put { key: 1, value: 2 }),
        json!({"kind": "put", "key": 1, "value": 2})
    );
    assert_eq!(
        encode(&DictOp::Remove {
            key: 4,
            stamp: Stamp::new(5, 6)
        }),
        json!({"kind": "remove", "key": 4, "stamp": {"time": 5, "replica": 6}})
    );
    assert_eq!(
        encode(&ListOp::Insert {
            id: ElemId {
                time: 3,
                replica: 1,
                tag: 9
            },
            after: None,
            value: 7
        }),
        json!({"kind": "insert", "id": {"time": 3, "replica": 1, "tag": 9}, "after": null, "value": 7})
    );
    assert_eq!(encode(&ListOp::Noop), json!({"kind": "noop"}));
    assert_eq!(
        encode(&LwwGridConfig::default()),
        json!({"rows": 3, "cols": 3, "tie-break": "peer-id"})
    );
    assert_eq!(
        encode(&u64::MAX),
        json!(18_446_744_073_709_551_615_u64),
        "a u64 stays an integer, never a float"
    );

    let partial: LwwGridConfig = serde_json::from_str(r#"{"tie-break": "random"}"#).unwrap();
    assert_eq!(
        partial,
        LwwGridConfig {
            tie_break: TieBreak::Random,
            ..LwwGridConfig::default()
        }
    );
    let empty: LwwDictConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, LwwDictConfig::default());
    assert!(serde_json::from_str::<LwwDictConfig>(r#"{"tiebreak": "random"}"#).is_err());
    assert!(serde_json::from_str::<LwwGridConfig>(r#"{"rows": 2, "colums": 2}"#).is_err());
}
