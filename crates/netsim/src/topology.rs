//! Who talks to whom: the three topologies, one module each, behind one small trait. A protocol
//! asks the topology where a node pushes news ([`Topology::push_targets`]), which peers a random
//! round picks ([`Topology::random_candidates`]), and whether a node passes on what it receives
//! ([`Topology::forwards`]).

use crate::outcome::{NodeId, Status};
use crate::scenario::Topology as TopologyKind;

mod gossip;
mod mesh;
mod relay;

/// What a topology may look at: the nodes' count and statuses, and the relay server.
pub(crate) struct NodesView<'a> {
    pub(crate) replicas: u32,
    pub(crate) server: Option<NodeId>,
    pub(crate) statuses: &'a dyn Fn(NodeId) -> Status,
}

/// One topology. Random choices are the protocol's: a topology only names the candidates.
pub(crate) trait Topology: Sync {
    /// Nodes beyond the replicas (the relay server).
    fn servers(&self) -> u32 {
        0
    }

    /// Where `node` pushes news, all but `except`; `None` when the push goes to random peers
    /// instead (gossip).
    fn push_targets(
        &self,
        nodes: &NodesView<'_>,
        node: NodeId,
        except: Option<NodeId>,
    ) -> Option<Targets>;

    /// The peers a random round of `node` draws from; a single candidate is taken as it is.
    fn random_candidates(&self, nodes: &NodesView<'_>, node: NodeId) -> Candidates;

    /// Whether `node` passes on what it receives (`learned`: it was news to it).
    fn forwards(&self, nodes: &NodesView<'_>, node: NodeId, learned: bool) -> bool;
}

/// The peers a random round draws from.
pub(crate) enum Candidates {
    /// Exactly this peer, drawn from nothing.
    Only(NodeId),
    /// `fanout` of the replicas but the node itself.
    OtherReplicas,
}

/// The topology a scenario names.
pub(crate) fn of(kind: TopologyKind) -> &'static dyn Topology {
    match kind {
        TopologyKind::Mesh => &mesh::Mesh,
        TopologyKind::Relay => &relay::Relay,
        TopologyKind::Gossip => &gossip::Gossip,
    }
}

/// The nodes a message goes to. Every other replica, the common case, is counted off without
/// allocating: a list per write was a twentieth of a run.
pub enum Targets {
    /// The nodes from `next` up to `end` but the `skip` ones (`NodeId::MAX` skips nothing: no
    /// node has that id).
    #[doc(hidden)]
    Others {
        next: NodeId,
        end: NodeId,
        skip: [NodeId; 2],
    },
    #[doc(hidden)]
    Listed(std::vec::IntoIter<NodeId>),
}

impl Iterator for Targets {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        match self {
            Targets::Others { next, end, skip } => {
                while *next < *end {
                    let node = *next;
                    *next += 1;
                    if node != skip[0] && node != skip[1] {
                        return Some(node);
                    }
                }
                None
            }
            Targets::Listed(list) => list.next(),
        }
    }
}

impl Targets {
    /// Whether there is no target at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Targets::Others { next, end, skip } => (*next..*end).all(|node| skip.contains(&node)),
            Targets::Listed(list) => list.len() == 0,
        }
    }

    pub(crate) fn one(node: NodeId) -> Targets {
        Targets::Others {
            next: node,
            end: node + 1,
            skip: [NodeId::MAX; 2],
        }
    }

    pub(crate) fn listed(nodes: Vec<NodeId>) -> Targets {
        Targets::Listed(nodes.into_iter())
    }
}
