//! The checker's integration tests in one binary (one link of the simulator and the model
//! checker, not six). `zoo` and `model_speed` stay apart, as `.ci/run` and
//! docs/model-checking.md name them.

mod intent_streaming;
mod list;
mod model_check;
mod model_connections;
mod model_round_trip;
mod regression;
mod shrink;
mod watch_modes;
