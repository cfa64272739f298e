//! Full mesh: every replica talks to every other replica directly.

use super::{Candidates, NodesView, Targets, Topology};
use crate::outcome::NodeId;

pub(crate) struct Mesh;

impl Topology for Mesh {
    fn push_targets(
        &self,
        nodes: &NodesView<'_>,
        node: NodeId,
        except: Option<NodeId>,
    ) -> Option<Targets> {
        Some(Targets::Others {
            next: 0,
            end: nodes.replicas,
            skip: [node, except.unwrap_or(NodeId::MAX)],
        })
    }

    fn random_candidates(&self, _nodes: &NodesView<'_>, _node: NodeId) -> Candidates {
        Candidates::OtherReplicas
    }

    fn forwards(&self, _nodes: &NodesView<'_>, _node: NodeId, _learned: bool) -> bool {
        false
    }
}
