//! Sync protocols written the way a user writes them, against converge's public protocol seam
//! (`converge::netsim::protocol`) and nothing else:
//!
//! - [`pull_sync`]: each device keeps its position in a server's op log, pulls everything since
//!   its position and pushes its new ops; in the naive version a device jumps to the log's end
//!   when its push is acknowledged, and skips what others pushed meanwhile.
//! - [`relay`]: the grid tutorial's WebSocket relay: every client sends its whole state to the
//!   server on each edit, and the server passes it on to every other connected client.
//! - [`resend`]: every op to every peer, sent again on a timer until the peer acknowledges it.
//!
//! The tests beside them (`tests/`) are the ones a user would write: each protocol against the
//! network faults it must survive, and the naive pull sync caught with a shrunk counterexample.

pub mod pull_sync;
pub mod relay;
pub mod resend;
