//! Gossip: each push goes to `fanout` peers drawn from the seed, and a replica that learned
//! something passes it on the same way.

use super::{Candidates, NodesView, Targets, Topology};
use crate::outcome::NodeId;

pub(crate) struct Gossip;

impl Topology for Gossip {
    fn push_targets(
        &self,
        _nodes: &NodesView<'_>,
        _node: NodeId,
        _except: Option<NodeId>,
    ) -> Option<Targets> {
        None
    }

    fn random_candidates(&self, _nodes: &NodesView<'_>, _node: NodeId) -> Candidates {
        Candidates::OtherReplicas
    }

    fn forwards(&self, _nodes: &NodesView<'_>, _node: NodeId, learned: bool) -> bool {
        learned
    }
}
