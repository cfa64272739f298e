//! The LWW-element dictionary: every key keeps the latest add (with its value) and the latest
//! remove. A key is present when its latest add beats its latest remove; at equal stamp times the
//! [`Bias`] decides. Two adds at equal times with different values go to the configured
//! [`TieBreak`]: by peer id (correct) or `keep-local` (the reproduction of a real bug).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::stamp::{incoming_wins, Stamp, TieBreak};
use crate::traits::{
    digest_round, Coin, DeltaCrdt, Deltas, Intent, KeyEntry, OpCrdt, StampedSpec, StateCrdt,
};

/// Which side wins when a key's latest add and latest remove carry the same stamp time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    #[default]
    Add,
    Remove,
}

/// Defaults: add-bias, value ties by peer id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LwwDictConfig {
    pub bias: Bias,
    /// How equal-time adds with different values are broken.
    pub tie_break: TieBreak,
}

/// The add and remove history of one key that matters: the latest of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub add: Option<(Stamp, u64)>,
    pub remove: Option<Stamp>,
}

impl Entry {
    /// The value a lookup returns, if the key is present.
    pub fn lookup(&self, bias: Bias) -> Option<u64> {
        let (add_stamp, value) = self.add?;
        let present = match self.remove {
            None => true,
            Some(remove) if add_stamp.time != remove.time => add_stamp.time > remove.time,
            Some(_) => bias == Bias::Add,
        };
        present.then_some(value)
    }
}

/// An add (or update) or a remove of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DictOp {
    Add { key: u32, value: u64, stamp: Stamp },
    Remove { key: u32, stamp: Stamp },
}

/// What a user sees: the present keys and their values.
pub type DictView = BTreeMap<u32, u64>;

/// The LWW-element dictionary. See the module docs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LwwDict {
    config: LwwDictConfig,
    entries: BTreeMap<u32, Entry>,
    /// Local bookkeeping for deltas: the version at which each key last changed here.
    changed_at: BTreeMap<u32, u64>,
    version: u64,
}

impl PartialEq for LwwDict {
    /// Replicated state only; change counters are local.
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.entries == other.entries
    }
}

impl std::hash::Hash for LwwDict {
    /// What equality compares (policy and entries), so a model checker can fingerprint a
    /// dictionary.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.config.hash(state);
        self.entries.hash(state);
    }
}

impl LwwDict {
    /// The present keys and their values, in key order: what the view shows.
    fn shown(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.entries
            .iter()
            .filter_map(|(key, entry)| entry.lookup(self.config.bias).map(|value| (*key, value)))
    }

    pub fn new(config: LwwDictConfig) -> Self {
        LwwDict {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &LwwDictConfig {
        &self.config
    }

    pub fn entry(&self, key: u32) -> Option<&Entry> {
        self.entries.get(&key)
    }

    pub fn lookup(&self, key: u32) -> Option<u64> {
        self.entries
            .get(&key)
            .and_then(|e| e.lookup(self.config.bias))
    }

    /// Offers an entry's history for one key; returns whether anything changed.
    fn offer(&mut self, key: u32, incoming: &Entry, coin: &mut dyn Coin) -> bool {
        let tie_break = self.config.tie_break;
        let local = self.entries.entry(key).or_default();
        let mut changed = false;
        if let Some((stamp, value)) = incoming.add {
            let wins = match local.add {
                None => true,
                Some((local_stamp, ref local_value)) => {
                    incoming_wins((local_stamp, local_value), (stamp, &value), tie_break, coin)
                }
            };
            if wins {
                local.add = Some((stamp, value));
                changed = true;
            }
        }
        if let Some(stamp) = incoming.remove {
            if local.remove.is_none_or(|local_remove| stamp > local_remove) {
                local.remove = Some(stamp);
                changed = true;
            }
        }
        if changed {
            self.version += 1;
            self.changed_at.insert(key, self.version);
        } else if *local == Entry::default() {
            self.entries.remove(&key);
        }
        changed
    }
}

impl StateCrdt for LwwDict {
    type View = DictView;

    fn merge(&mut self, other: &Self, coin: &mut dyn Coin) {
        for (key, entry) in &other.entries {
            self.offer(*key, entry, coin);
        }
    }

    fn view(&self) -> DictView {
        self.shown().collect()
    }

    fn view_matches(&self, view: &DictView) -> bool {
        self.shown()
            .eq(view.iter().map(|(key, value)| (*key, *value)))
    }

    fn view_digest(&self) -> Option<u64> {
        Some(self.shown().fold(0, |digest, (key, value)| {
            digest_round(digest_round(digest, u64::from(key)), value)
        }))
    }

    fn time_max(&self) -> u64 {
        self.entries
            .values()
            .flat_map(|e| {
                e.add
                    .map(|(s, _)| s.time)
                    .into_iter()
                    .chain(e.remove.map(|s| s.time))
            })
            .max()
            .unwrap_or(0)
    }

    fn key_time(&self, key: u32) -> Option<u64> {
        let entry = self.entries.get(&key)?;
        entry
            .add
            .map(|(s, _)| s.time)
            .max(entry.remove.map(|s| s.time))
    }

    fn size_bytes(&self) -> usize {
        // Key (4), then add stamp and value (20) and remove stamp (12) where present.
        self.entries.values().map(entry_size_bytes).sum()
    }

    fn memory_bytes(&self) -> usize {
        // Two ordered-map entries per key (the entry and its change version), with the maps'
        // per-entry overhead, about a word per entry.
        const OVERHEAD_BYTES: usize = 8;
        self.entries.len()
            * (std::mem::size_of::<(u32, Entry)>()
                + std::mem::size_of::<(u32, u64)>()
                + 2 * OVERHEAD_BYTES)
    }

    fn deltas() -> Option<Deltas<Self>> {
        Some(Deltas::of())
    }

    /// Keys are the dictionary's keys, every `u32`.
    fn key_bound(&self) -> Option<u64> {
        Some(1 << 32)
    }

    fn visit_keys(&self, keys: Range<u64>, visit: &mut dyn FnMut(KeyEntry)) {
        for (key, entry) in self.entries_in(keys) {
            visit(KeyEntry {
                key: u64::from(*key),
                digest: entry_digest(entry),
                size_bytes: entry_size_bytes(entry),
            });
        }
    }

    fn restricted(&self, ranges: &[Range<u64>]) -> Option<Self> {
        let entries = ranges
            .iter()
            .flat_map(|range| self.entries_in(range.clone()))
            .map(|(key, entry)| (*key, *entry))
            .collect();
        Some(LwwDict {
            config: self.config,
            entries,
            changed_at: BTreeMap::new(),
            version: 0,
        })
    }
}

impl LwwDict {
    /// The entries under keys in `keys`, in key order.
    fn entries_in(&self, keys: Range<u64>) -> impl Iterator<Item = (&u32, &Entry)> + '_ {
        let start = u32::try_from(keys.start).ok();
        let end = keys.end;
        start
            .into_iter()
            .flat_map(move |start| self.entries.range(start..))
            .take_while(move |(key, _)| u64::from(**key) < end)
    }
}

/// A hash of an entry's replicated state: its add (stamp and value) and its remove, each with
/// whether it is there, so that a missing add and an add at time zero differ.
fn entry_digest(entry: &Entry) -> u64 {
    let mut digest = 0;
    if let Some((stamp, value)) = entry.add {
        digest = digest_round(digest, 1);
        digest = digest_round(digest, stamp.time);
        digest = digest_round(digest, u64::from(stamp.replica));
        digest = digest_round(digest, value);
    }
    if let Some(stamp) = entry.remove {
        digest = digest_round(digest, 2);
        digest = digest_round(digest, stamp.time);
        digest = digest_round(digest, u64::from(stamp.replica));
    }
    digest
}

/// An entry's encoded size with its key, as [`StateCrdt::size_bytes`] counts it.
fn entry_size_bytes(entry: &Entry) -> usize {
    4 + 2 + entry.add.map_or(0, |_| 20) + entry.remove.map_or(0, |_| 12)
}

impl OpCrdt for LwwDict {
    type Intent = Intent;
    type Op = DictOp;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> DictOp {
        match *intent {
            Intent::Put { key, value } => DictOp::Add { key, value, stamp },
            Intent::Remove { key } => DictOp::Remove { key, stamp },
        }
    }

    fn apply(&mut self, op: &DictOp, coin: &mut dyn Coin) {
        match *op {
            DictOp::Add { key, value, stamp } => self.offer(
                key,
                &Entry {
                    add: Some((stamp, value)),
                    remove: None,
                },
                coin,
            ),
            DictOp::Remove { key, stamp } => self.offer(
                key,
                &Entry {
                    add: None,
                    remove: Some(stamp),
                },
                coin,
            ),
        };
    }

    fn op_size_bytes(op: &DictOp) -> usize {
        match op {
            DictOp::Add { .. } => 1 + 4 + 8 + 12,
            DictOp::Remove { .. } => 1 + 4 + 12,
        }
    }

    fn op_key(op: &DictOp) -> Option<u64> {
        match *op {
            DictOp::Add { key, .. } | DictOp::Remove { key, .. } => Some(u64::from(key)),
        }
    }
}

/// The dictionary's specification over intents, from its documented semantics alone: a key's
/// latest add is the put with the greatest `(stamp time, replica, value)`, its latest remove the
/// remove with the greatest stamp; the key is present with the add's value when the add's time is
/// greater, or equal under add-bias. Whatever order the writes came in, and with value ties by
/// peer id (a dictionary configured to break them otherwise is checked against this).
#[derive(Clone, Debug, Default)]
pub struct DictSpec {
    bias: Bias,
    adds: BTreeMap<u32, (Stamp, u64)>,
    removes: BTreeMap<u32, Stamp>,
}

impl DictSpec {
    /// No write yet.
    pub fn new(config: LwwDictConfig) -> Self {
        DictSpec {
            bias: config.bias,
            ..Default::default()
        }
    }
}

impl StampedSpec<LwwDict> for DictSpec {
    fn add(&mut self, intent: &Intent, stamp: Stamp) {
        match *intent {
            Intent::Put { key, value } => {
                let add = self.adds.entry(key).or_insert((stamp, value));
                *add = (*add).max((stamp, value));
            }
            Intent::Remove { key } => {
                let remove = self.removes.entry(key).or_insert(stamp);
                *remove = (*remove).max(stamp);
            }
        }
    }

    fn view(&self) -> DictView {
        self.adds
            .iter()
            .filter(|(key, (add, _))| match self.removes.get(key) {
                None => true,
                Some(remove) if remove.time == add.time => self.bias == Bias::Add,
                Some(remove) => add.time > remove.time,
            })
            .map(|(key, (_, value))| (*key, *value))
            .collect()
    }
}

impl DeltaCrdt for LwwDict {
    fn version(&self) -> u64 {
        self.version
    }

    fn delta_since(&self, version: u64) -> Self {
        let entries = self
            .changed_at
            .iter()
            .filter(|(_, changed)| **changed > version)
            .map(|(key, _)| (*key, self.entries[key]))
            .collect();
        LwwDict {
            config: self.config,
            entries,
            changed_at: BTreeMap::new(),
            version: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::FixedCoin;

    fn add(key: u32, value: u64, time: u64, replica: u32) -> DictOp {
        DictOp::Add {
            key,
            value,
            stamp: Stamp::new(time, replica),
        }
    }

    fn remove(key: u32, time: u64, replica: u32) -> DictOp {
        DictOp::Remove {
            key,
            stamp: Stamp::new(time, replica),
        }
    }

    #[test]
    fn a_remove_wins_only_if_later() {
        let coin = &mut FixedCoin(false);
        let mut dict = LwwDict::new(LwwDictConfig::default());
        dict.apply(&add(1, 10, 5, 0), coin);
        dict.apply(&remove(1, 4, 1), coin);
        assert_eq!(dict.lookup(1), Some(10));
        dict.apply(&remove(1, 6, 1), coin);
        assert_eq!(dict.lookup(1), None);
        dict.apply(&add(1, 11, 7, 0), coin);
        assert_eq!(dict.lookup(1), Some(11));
    }

    #[test]
    fn bias_decides_equal_times() {
        let coin = &mut FixedCoin(false);
        for (bias, expected) in [(Bias::Add, Some(10)), (Bias::Remove, None)] {
            let mut dict = LwwDict::new(LwwDictConfig {
                bias,
                ..Default::default()
            });
            dict.apply(&add(1, 10, 5, 0), coin);
            dict.apply(&remove(1, 5, 1), coin);
            assert_eq!(dict.lookup(1), expected, "{bias:?}");
        }
    }

    #[test]
    fn equal_time_adds_diverge_only_with_keep_local() {
        let coin = &mut FixedCoin(false);
        for (tie_break, converges) in [(TieBreak::PeerId, true), (TieBreak::KeepLocal, false)] {
            let config = LwwDictConfig {
                tie_break,
                ..Default::default()
            };
            let mut a = LwwDict::new(config);
            let mut b = LwwDict::new(config);
            a.apply(&add(1, 10, 5, 0), coin);
            b.apply(&add(1, 20, 5, 1), coin);
            let a_before = a.clone();
            a.merge(&b, coin);
            b.merge(&a_before, coin);
            assert_eq!(a.view() == b.view(), converges, "{tie_break:?}");
        }
    }

    #[test]
    fn delta_since_carries_the_changed_keys() {
        let coin = &mut FixedCoin(false);
        let mut a = LwwDict::new(LwwDictConfig::default());
        a.apply(&add(1, 10, 1, 0), coin);
        let seen = a.version();
        a.apply(&add(2, 20, 2, 0), coin);
        assert_eq!(a.delta_since(seen).view(), DictView::from([(2, 20)]));
        let mut b = LwwDict::new(LwwDictConfig::default());
        b.merge(&a.delta_since(0), coin);
        assert_eq!(b, a);
    }
}
