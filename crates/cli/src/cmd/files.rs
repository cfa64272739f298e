//! Writing reports: every file is written to a temporary file in the same directory and renamed
//! into place, so that a reader (a browser, a CI artifact upload, a concurrent shard) never sees a
//! half-written file.
//!
//! Every report carries its run id ([`converge::run_id`]). Before a report is written where another
//! one lies, the old one's id is read from the head of the file: the same run is simply written
//! again (rerunning is idempotent), but a different run's report, with every file that goes with
//! it, is first moved to `<out>/previous/<its run id>/` and stderr says so. A partial report never
//! replaces a whole one of the same run either.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use converge::checker::judge::matrix_labels;
use converge::checker::{RunReport, Shrunk};
use converge::netsim::{Scenario, Verdict};
use converge::report::index::{IndexRun, IndexSweep};
use converge::report::{exports, file_safe, html, index, ReportDocument};
use converge::run_id::run_id_of_run;
use converge::scenario_file::OpenError;
use converge::sweep::{SweepResult, SWEEP_KIND};
use serde_json::Value;

use super::args::shell_quote;

/// A report, index or result file that could not be written after the run it belongs to (a full
/// disk, a read-only directory). Kept apart from bad input: the run happened and its verdict was
/// printed, so the binary exits with [`EXIT_STATUS_NOT_WRITTEN`], not 2.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct NotWritten {
    pub path: String,
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// The exit status of a command whose runs ended but whose reports could not all be written.
pub const EXIT_STATUS_NOT_WRITTEN: u8 = 3;

fn not_written(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> NotWritten {
    let path = path.display().to_string();
    move |source| NotWritten { path, what, source }
}

/// Temporary files made by this process so far: with the process id, each temporary file's name
/// is unique among every converge process and thread writing into one directory.
static TEMPORARY_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Ends the name of every temporary file (`.<name>.<pid>-<n>.tmp`), so that a later run can tell
/// one that a killed process left behind.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename).
/// The temporary file is removed on every error (a full disk fails the write, a directory made
/// read-only fails the rename), so that a failed write leaves nothing behind that could fill the
/// disk again.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(not_written(dir, "cannot create the directory"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let serial = TEMPORARY_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = dir.join(format!(
        ".{name}.{}-{serial}{TEMPORARY_SUFFIX}",
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.flush()))
        .map_err(not_written(&temporary, "cannot write"));
    let moved = written.and_then(|()| {
        std::fs::rename(&temporary, path).map_err(not_written(path, "cannot move into place"))
    });
    if moved.is_err() {
        // Nothing more can be done about a temporary file that cannot be removed either; the next
        // run in this directory removes it (see [`remove_stale_temporaries`]).
        let _ = std::fs::remove_file(&temporary);
    }
    Ok(moved?)
}

/// Removes the temporary files in `dir` left by converge processes that no longer run (killed
/// while writing, or on a machine that lost power). Called with the directory locked, when no
/// other process writes there; a temporary file of a process still running is left alone all the
/// same. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temporary_owner(name) else {
            continue;
        };
        if pid != std::process::id()
            && !process_runs(pid)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The process id in a temporary file's name `.<name>.<pid>-<n>.tmp` (or the older
/// `.<name>.<pid>.tmp`), if it is one.
fn temporary_owner(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMPORARY_SUFFIX)?;
    let (_, owner) = inner.rsplit_once('.')?;
    let pid = owner.split_once('-').map_or(owner, |(pid, _)| pid);
    pid.parse().ok()
}

/// Whether a process with this id runs (or exists but belongs to someone else).
fn process_runs(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// An exclusive lock on a reports directory, held while a command checks what lies there and
/// writes its files, and while it rebuilds the index: two runs writing into one directory at once
/// then take turns, so the second sees the first one's report (and keeps it aside if it is another
/// run's), and the index written last lists both. Released when dropped. A lock is an advisory
/// `flock` on the directory itself, so it leaves no file behind, and is released by the system
/// when a process dies.
pub struct DirLock {
    #[cfg(unix)]
    _dir: std::fs::File,
}

/// How often a locked reports directory is tried again.
#[cfg(unix)]
const LOCK_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a command waits for a locked reports directory before it says so.
#[cfg(unix)]
const LOCK_WAIT_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Locks `dir` (creating it), then removes stale temporary files in it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir).map_err(not_written(dir, "cannot create the directory"))?;
    #[cfg(unix)]
    let lock = {
        use std::os::unix::io::AsRawFd as _;
        let handle = std::fs::File::open(dir).map_err(not_written(dir, "cannot open"))?;
        // Tried without blocking, again every few milliseconds: a directory another converge
        // holds for long (a slow disk, a stopped process) is then said to be waited for, rather
        // than hanging in silence.
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(not_written(dir, "cannot lock")(error).into());
            }
            if !said && started.elapsed() >= LOCK_WAIT_NOTICE_AFTER {
                eprintln!(
                    "note: waiting for another converge that is writing into {}",
                    super::terminal::clean(&dir.display().to_string())
                );
                said = true;
            }
            std::thread::sleep(LOCK_POLL_INTERVAL);
        }
        DirLock { _dir: handle }
    };
    #[cfg(not(unix))]
    let lock = DirLock {};
    let removed = remove_stale_temporaries(dir);
    if removed > 0 {
        eprintln!(
            "note: removed {removed} temporary files that an earlier converge left in {}",
            super::terminal::clean(&dir.display().to_string())
        );
    }
    Ok(lock)
}

/// The stem of a report file for a scenario name: the name made file-safe and, when that changed
/// it, followed by a short hash of the name as written, so that two names that sanitize alike
/// (`a/b` and `a:b`) get distinct files instead of one overwriting the other.
pub fn name_stem(name: &str) -> String {
    let safe = file_safe(name);
    if safe == name {
        return safe;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{safe}-{:08x}", converge::netsim::mix64(hash) >> 32)
}

/// The stem of a run's files: [`name_stem`] and the seed.
pub fn run_stem(name: &str, seed: u64) -> String {
    format!("{}-seed{seed}", name_stem(name))
}

/// The directory, under a reports directory, where reports of other runs are moved to before
/// they would be written over.
pub const PREVIOUS_DIR: &str = "previous";

/// Bytes read from the head of an existing report to find its run id: the id is the first field of
/// a run report and the third of a sweep result.
const RUN_ID_HEAD_BYTES: u64 = 64 * 1024;

/// Report files read back (by the index, `replay`, `shrink` and `merge`) are refused above this
/// size: a run report is under a megabyte and a sweep of a million seeds about half a gigabyte.
pub const REPORT_FILE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Reads a report file, refusing one larger than [`REPORT_FILE_BYTES_MAX`] before reading it.
pub fn read_report_file(path: &Path) -> Result<String> {
    let shown = path.display();
    let mut text = String::new();
    let file = match converge::scenario_file::open_regular(path) {
        Ok(file) => file,
        Err(OpenError::NotRegular(kind)) => {
            bail!("{shown}: {kind}, not a regular file; converge reads reports from regular files only")
        }
        Err(OpenError::Io(error)) => {
            return Err(anyhow::Error::new(error).context(format!("{shown}: cannot read")))
        }
    };
    file.take(REPORT_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{shown}: cannot read as UTF-8 text"))?;
    if text.len() as u64 > REPORT_FILE_BYTES_MAX {
        bail!(
            "{shown}: larger than {} MiB (REPORT_FILE_BYTES_MAX); not a report converge wrote",
            REPORT_FILE_BYTES_MAX / (1024 * 1024)
        );
    }
    Ok(text)
}

/// What the head of an existing report says about it: its run id (if it has one) and whether it is
/// partial.
fn existing_report(path: &Path) -> Option<(Option<String>, bool)> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(RUN_ID_HEAD_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let head = String::from_utf8_lossy(&head);
    let run_id = head.find("\"run_id\": \"").and_then(|start| {
        let rest = &head[start + "\"run_id\": \"".len()..];
        let id = &rest[..rest.find('"')?];
        (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
    });
    let partial = head.contains("\"partial\": true");
    Some((run_id, partial))
}

/// Before the report at `report_path` (and the other files of its set) is written for run
/// `run_id`: if an existing report there belongs to another run, or is a whole report that a
/// partial one would replace, moves the existing files of the set to
/// `<dir>/previous/<old run id>/` and says so on stderr.
pub fn keep_previous_run(
    dir: &Path,
    report_path: &Path,
    set: &[PathBuf],
    run_id: &str,
    partial: bool,
) -> Result<()> {
    let Some((old_id, old_partial)) = existing_report(report_path) else {
        return Ok(());
    };
    if old_id.as_deref() == Some(run_id) && (!partial || old_partial) {
        return Ok(());
    }
    let label = match &old_id {
        Some(id) if id == run_id => format!("{id}-whole"),
        Some(id) => id.clone(),
        None => "without-run-id".to_string(),
    };
    let previous = dir.join(PREVIOUS_DIR);
    let mut target = previous.join(file_safe(&label));
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        target = previous.join(format!("{}-{attempt}", file_safe(&label)));
    }
    std::fs::create_dir_all(&target)
        .map_err(not_written(&target, "cannot create the directory"))?;
    for file in set.iter().filter(|f| f.exists()) {
        let name = file.file_name().unwrap_or_default();
        std::fs::rename(file, target.join(name))
            .map_err(not_written(file, "cannot move aside to previous/"))?;
    }
    let why = match &old_id {
        Some(id) if id == run_id => {
            "a whole report of this run, which a partial one would replace".to_string()
        }
        Some(id) => format!("the report of another run ({id})"),
        None => "a report without a run id".to_string(),
    };
    eprintln!(
        "note: {} held {why}; it is kept in {}",
        super::terminal::clean(&report_path.display().to_string()),
        super::terminal::clean(&target.display().to_string())
    );
    Ok(())
}

/// The files of one run.
pub struct RunFiles {
    pub html: PathBuf,
    pub minimal_scenario: Option<PathBuf>,
}

/// Writes a run's report JSON, HTML page, Chrome trace and ShiViz log, and, when it was shrunk,
/// the minimal scenario (TOML) with the minimal run's own report. `partial_note` says why the
/// report is partial, when it is (the run or its shrinking was interrupted).
pub fn write_run_files(
    dir: &Path,
    report: &RunReport,
    shrunk: Option<&Shrunk>,
    partial_note: Option<&str>,
) -> Result<RunFiles> {
    let _lock = lock_dir(dir)?;
    let stem = run_stem(&report.scenario, report.seed);
    let run_id = run_id_of_run(&report.scenario_spec, report.seed);
    let json_path = dir.join(format!("{stem}.json"));
    let html_path = dir.join(format!("{stem}.html"));
    let trace_name = format!("{stem}.trace.json");
    let shiviz_name = format!("{stem}.shiviz.log");
    let set: Vec<PathBuf> = [
        format!("{stem}.json"),
        format!("{stem}.html"),
        trace_name.clone(),
        shiviz_name.clone(),
        format!("{stem}-minimal.toml"),
        format!("{stem}-minimal.json"),
    ]
    .iter()
    .map(|name| dir.join(name))
    .collect();
    keep_previous_run(dir, &json_path, &set, &run_id, partial_note.is_some())?;
    let mut links = vec![
        ("report JSON".to_string(), format!("{stem}.json")),
        ("Chrome trace (Perfetto)".to_string(), trace_name.clone()),
        ("ShiViz log".to_string(), shiviz_name.clone()),
    ];
    let mut minimal_scenario = None;
    if let Some(shrunk) = shrunk {
        let minimal_stem = format!("{stem}-minimal");
        let scenario_path = dir.join(format!("{minimal_stem}.toml"));
        write_atomic(&scenario_path, scenario_toml(&shrunk.scenario)?.as_bytes())?;
        let mut minimal_report = shrunk.report.clone();
        minimal_report.reproduce = format!(
            "converge run {} --seed {}",
            shell_quote(&scenario_path.display().to_string()),
            shrunk.seed
        );
        let minimal_run_id = run_id_of_run(&minimal_report.scenario_spec, minimal_report.seed);
        write_atomic(
            &dir.join(format!("{minimal_stem}.json")),
            serde_json::to_string_pretty(&ReportDocument::new(
                &minimal_report,
                &minimal_run_id,
                None,
            ))?
            .as_bytes(),
        )?;
        links.push((
            "minimal scenario (TOML)".to_string(),
            format!("{minimal_stem}.toml"),
        ));
        links.push((
            "minimal run report JSON".to_string(),
            format!("{minimal_stem}.json"),
        ));
        minimal_scenario = Some(scenario_path);
    }
    write_atomic(
        &json_path,
        serde_json::to_string_pretty(&ReportDocument::new(report, &run_id, partial_note))?
            .as_bytes(),
    )?;
    write_atomic(
        &dir.join(&trace_name),
        exports::chrome_trace(report).as_bytes(),
    )?;
    write_atomic(
        &dir.join(&shiviz_name),
        exports::shiviz_log(report).as_bytes(),
    )?;
    let page = html::RunPage {
        report,
        shrunk,
        links,
        index_href: Some("index.html".to_string()),
        run_id: Some(run_id.clone()),
        partial: partial_note.map(str::to_string),
    };
    write_atomic(&html_path, html::render(&page).as_bytes())?;
    Ok(RunFiles {
        html: html_path,
        minimal_scenario,
    })
}

/// A scenario as a TOML file, with a header saying where it came from.
pub fn scenario_toml(scenario: &Scenario) -> Result<String> {
    let body = toml::to_string(scenario).context("cannot render the scenario as TOML")?;
    Ok(format!(
        "# {}\n{body}",
        scenario.description.replace('\n', " ")
    ))
}

/// Writes a sweep (or merge) result as `<dir>/<name>.json`, keeping a different sweep's result
/// that lies there, and returns the path.
pub fn write_sweep_result(dir: &Path, name: &str, result: &SweepResult) -> Result<PathBuf> {
    let _lock = lock_dir(dir)?;
    let path = dir.join(format!("{name}.json"));
    keep_previous_run(
        dir,
        &path,
        std::slice::from_ref(&path),
        &result.run_id,
        result.partial,
    )?;
    write_atomic(&path, serde_json::to_string_pretty(result)?.as_bytes())?;
    Ok(path)
}

/// Rebuilds `index.html` from every run report and sweep result in `dir`, and returns its path.
/// `partial` says why the command writing it stopped early, if it did.
pub fn write_index(dir: &Path, partial: Option<&str>) -> Result<PathBuf> {
    let _lock = lock_dir(dir)?;
    let mut runs: Vec<IndexRun> = Vec::new();
    let mut sweeps: Vec<IndexSweep> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(not_written(dir, "cannot list"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.ends_with(".json") && !name.ends_with(".trace.json") && !name.starts_with('.')
        })
        .collect();
    names.sort();
    for name in names {
        let Ok(text) = read_report_file(&dir.join(&name)) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if value.get("kind").and_then(Value::as_str) == Some(SWEEP_KIND) {
            if let Ok(sweep) = serde_json::from_value::<SweepResult>(value) {
                sweeps.push(IndexSweep {
                    scenario: sweep.scenario.clone(),
                    seeds: format!("{}..{}", sweep.seeds.start, sweep.seeds.end),
                    runs: sweep.counts.runs,
                    converged: sweep.counts.verdicts.get("converges").copied().unwrap_or(0),
                    met_expectation: sweep.counts.met_expectation,
                    complete: sweep.complete,
                    href: name.clone(),
                    labels: matrix_labels(&sweep.scenario_spec),
                    failing_seeds: sweep
                        .runs
                        .iter()
                        .filter(|r| converge::sweep::surprises(r))
                        .take(5)
                        .map(|r| r.seed)
                        .collect(),
                    partial: sweep.partial_note(),
                    expectation_met: sweep.expectation.met,
                    converged_median_ms: sweep.converged_median_ms(),
                    verdicts: sweep.counts.verdicts.clone(),
                });
            }
            continue;
        }
        if let Some(run) = index_run(&name, &value) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    let path = dir.join("index.html");
    write_atomic(&path, index::render(&runs, &sweeps, partial).as_bytes())?;
    Ok(path)
}

fn index_run(name: &str, value: &Value) -> Option<IndexRun> {
    value.get("schema_version")?;
    let spec: Scenario = serde_json::from_value(value.get("scenario_spec")?.clone()).ok()?;
    let verdict = |key: &str| serde_json::from_value::<Verdict>(value.get(key)?.clone()).ok();
    let html_name = format!("{}.html", name.trim_end_matches(".json"));
    Some(IndexRun {
        scenario: value.get("scenario")?.as_str()?.to_string(),
        seed: value.get("seed")?.as_u64()?,
        verdict: verdict("verdict")?,
        expected: verdict("expected")?,
        met_expectation: value.get("met_expectation")?.as_bool()?,
        vacuous: value
            .pointer("/coverage/vacuous")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        converged_at_ms: value.get("converged_at_ms").and_then(Value::as_f64),
        trace_hash: value.get("trace_hash")?.as_str()?.to_string(),
        // Minimal runs have a report but no page of their own: link the scenario instead.
        href: if name.ends_with("-minimal.json") {
            format!("{}.toml", name.trim_end_matches(".json"))
        } else {
            html_name
        },
        labels: matrix_labels(&spec),
        partial: value
            .get("partial")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| {
                value
                    .get("partial_note")
                    .and_then(Value::as_str)
                    .unwrap_or("interrupted")
                    .to_string()
            }),
    })
}
