//! The built-in CRDTs' registry: the one place that maps a scenario's `[crdt] kind` to a type.
//!
//! Everything that runs a scenario of one of our CRDTs (judging, shrinking, the step replay of
//! reports, the determinism check, the golden trace hashes, the model checker's replays) is
//! generic over the CRDT type. It implements [`CrdtVisitor`] and calls [`CrdtSpec::dispatch`],
//! which hands it the function that makes the scenario's replicas. Adding a CRDT kind takes its
//! module in converge-crdt, its variant and options in [`CrdtSpec`], and one line here.

use std::hash::Hash;

use converge_crdt::{
    DictSpec, GridSpec, ListSpec, ListView, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt,
    ReplicaId, Rga, StampedSpec,
};

use crate::replicas::{Replicas, Specified};
use crate::scenario::CrdtSpec;

/// What every built-in CRDT is: op-based (hence state-based), hashable as its replicated state
/// for the model checker, and shareable across the threads of a sweep or a check.
pub trait BuiltinCrdt: OpCrdt<Op: Hash + Send + Sync> + Hash + Send + Sync + 'static {}

impl<C> BuiltinCrdt for C where C: OpCrdt<Op: Hash + Send + Sync> + Hash + Send + Sync + 'static {}

/// Something to do with the CRDT a scenario names, whatever its type (see [`CrdtSpec::dispatch`]).
pub trait CrdtVisitor {
    type Output;

    /// Does it with `make`, which makes the replicas' empty states and carries the type's
    /// specification.
    fn visit<C: BuiltinCrdt>(
        self,
        make: impl Replicas<C> + Copy + Send + Sync + 'static,
    ) -> Self::Output;
}

impl CrdtSpec {
    /// Calls `visitor` with what makes this CRDT's replicas: the type's configuration, which is
    /// a [`Replicas`] with the type's specification.
    pub fn dispatch<V: CrdtVisitor>(&self, visitor: V) -> V::Output {
        match *self {
            CrdtSpec::LwwGrid(config) => visitor.visit(config),
            CrdtSpec::LwwDict(config) => visitor.visit(config),
            CrdtSpec::Rga => visitor.visit(RgaReplicas),
        }
    }
}

/// A grid's configuration makes its replicas, and checks them against the grid's specification.
impl Replicas<LwwGrid> for LwwGridConfig {
    fn make(&self, _replica: ReplicaId, _incarnation: u32) -> LwwGrid {
        LwwGrid::new(*self)
    }

    fn stamped_spec(&self) -> Option<Box<dyn StampedSpec<LwwGrid>>> {
        Some(Box::new(GridSpec::new(*self)))
    }
}

/// A dictionary's configuration makes its replicas, and checks them against the dictionary's
/// specification.
impl Replicas<LwwDict> for LwwDictConfig {
    fn make(&self, _replica: ReplicaId, _incarnation: u32) -> LwwDict {
        LwwDict::new(*self)
    }

    fn stamped_spec(&self) -> Option<Box<dyn StampedSpec<LwwDict>>> {
        Some(Box::new(DictSpec::new(*self)))
    }
}

/// Makes empty lists, and checks them against the list's specification ([`ListSpec`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RgaReplicas;

impl Replicas<Rga> for RgaReplicas {
    fn make(&self, _replica: ReplicaId, _incarnation: u32) -> Rga {
        Rga::new()
    }

    fn specifies(&self) -> bool {
        true
    }

    /// `None` for a replica that lacks an update some writer of what it holds had seen: the
    /// positions of that writer's intent were read in a list this replica cannot rebuild (and
    /// eventual convergence reports what it lacks).
    fn expected_view(&self, updates: &[Specified<'_, converge_crdt::Intent>]) -> Option<ListView> {
        let end = updates
            .iter()
            .map(|u| u.index as usize + 1)
            .max()
            .unwrap_or(0);
        let mut held = vec![false; end];
        for update in updates {
            held[update.index as usize] = true;
        }
        let closed = updates.iter().all(|update| {
            update
                .seen
                .iter()
                .all(|seen| held.get(seen as usize).copied().unwrap_or(false))
        });
        if !closed {
            return None;
        }
        let intents: Vec<_> = updates.iter().map(|u| (*u.intent, u.stamp)).collect();
        Some(ListSpec::view(&intents, |i, j| {
            updates[i].seen.contains(updates[j].index)
        }))
    }
}
