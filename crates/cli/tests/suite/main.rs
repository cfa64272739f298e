//! The CLI's end-to-end tests in one binary: every test file of this directory used to be a test
//! binary of its own, each compiling and linking the whole simulator again, which was most of a
//! fresh machine's test build. `golden` and `fuzz_scenarios` stay apart, as `.ci/run` and the
//! bless command name them.

#[path = "../common/mod.rs"]
mod common;

mod builtin_specs;
mod cli;
mod connections;
mod determinism_check;
mod hostile;
mod interrupt;
mod own_intents;
mod protocol_seam;
mod robustness;
mod run_ids;
#[cfg(unix)]
mod worst_cases;
