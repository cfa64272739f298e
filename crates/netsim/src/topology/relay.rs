//! Relay (star): replicas talk only to a relay server, an extra node numbered `replicas`, which
//! passes every message on to every other connected client, as the WebSocket tutorial's server
//! does.

use super::{Candidates, NodesView, Targets, Topology};
use crate::outcome::{NodeId, Status};

pub(crate) struct Relay;

impl Topology for Relay {
    fn servers(&self) -> u32 {
        1
    }

    fn push_targets(
        &self,
        nodes: &NodesView<'_>,
        node: NodeId,
        except: Option<NodeId>,
    ) -> Option<Targets> {
        let server = nodes.server.expect("a relay has a server");
        if node != server {
            return Some(Targets::one(server));
        }
        let connected = (0..nodes.replicas)
            .filter(|c| Some(*c) != except && (nodes.statuses)(*c) == Status::Up)
            .collect();
        Some(Targets::listed(connected))
    }

    fn random_candidates(&self, nodes: &NodesView<'_>, node: NodeId) -> Candidates {
        match nodes.server {
            Some(server) if node != server => Candidates::Only(server),
            _ => Candidates::OtherReplicas,
        }
    }

    fn forwards(&self, nodes: &NodesView<'_>, node: NodeId, _learned: bool) -> bool {
        nodes.server == Some(node)
    }
}
