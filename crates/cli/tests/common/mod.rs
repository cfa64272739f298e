//! Helpers shared by the end-to-end tests: scratch directories, the scenarios folder and the
//! `converge` binary. Each test file uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// A fresh scratch directory per test, named after the test file's binary, the process and the
/// test, so that test files and concurrent runs never share one.
pub fn scratch(test: &str) -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tests".into());
    let dir = std::env::temp_dir().join(format!("converge-{binary}-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the `converge` binary in `dir`.
pub fn converge(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the converge binary runs")
}
