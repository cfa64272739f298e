//! placeholder
pub use converge_crdt as crdt;
