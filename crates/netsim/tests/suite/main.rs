//! The simulator's integration tests in one binary (one link of the simulator, not four).

mod behaviour;
mod connections;
mod determinism;
mod protocol_matrix;
mod stories;
