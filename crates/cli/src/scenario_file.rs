//! Scenario files: TOML (or JSON, by the `.json` extension) into a validated [`Scenario`].
//!
//! A bad file gets exactly one error, and that error names the file, the line and column, the key
//! (as a dotted path such as `faults[1].replica`), what was found and what was expected, with the
//! offending line quoted. Neither parser reports the key path of a deserialization error, so it is
//! recovered from the error's position in the text: the table headers above it and the `key =`
//! (or `"key":`) in front of it.

//!
//! Hostile files get the same treatment: a file above [`SCENARIO_FILE_BYTES_MAX`] is refused before
//! it is read, bytes that are not UTF-8 are refused at the first bad byte, nesting deeper than
//! [`NESTING_DEPTH_MAX`] is refused before either parser sees it, and every message quotes at most a
//! window of the offending line with control characters made visible, so that an error is a few
//! short lines whatever the file holds.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use converge_netsim::Scenario;

/// The largest scenario file read: 8 MiB. A hand-written scenario is a few kilobytes and a scripted
/// one with thousands of message fates a few hundred; parsing 8 MiB of TOML takes about a second.
pub const SCENARIO_FILE_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Nesting of arrays, tables and inline tables accepted, counted before parsing. A scenario nests
/// four levels at most (`[[network.links]]` holding `latency = { ... }`). Both parsers have limits
/// of their own (toml 0.9 stops at 80 levels, serde_json at 128, neither overflows the stack at
/// 100,000), but a feature flag elsewhere in a build can lift serde_json's, and this check gives
/// the same clear message for both formats.
pub const NESTING_DEPTH_MAX: usize = 64;

/// Characters of a quoted line shown around the error's column; longer lines are cut to a window.
const QUOTE_CHARS_MAX: usize = 100;

/// Characters of a parser's message shown; the middle of a longer one (a huge string value echoed
/// back) is left out.
const MESSAGE_CHARS_MAX: usize = 300;

/// Occurrences of a key searched for when pointing a validation error at the file: each costs a
/// scan of the text, so the search stops early on huge files (the message still names the key).
const KEY_SEARCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The two formats a scenario file may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// JSON for `.json` files, TOML for everything else.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Where in a file something went wrong. Lines and columns count from 1; columns in characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// The line's text, for quoting: all of it, or a window of it around the column when the line
    /// is long.
    pub text: String,
    /// The column within `text`, where the caret goes.
    pub quoted_column: usize,
}

/// Why a scenario file was refused.
#[derive(Debug)]
pub enum ScenarioFileError {
    /// The file could not be read.
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is larger than [`SCENARIO_FILE_BYTES_MAX`].
    TooLarge { path: String },
    /// The path names a FIFO, a device, a socket or a directory: only regular files are read, so
    /// that a pipe with no writer cannot block a command forever.
    NotRegular { path: String, kind: &'static str },
    /// The file holds bytes that are not UTF-8 text.
    NotText { path: String, location: Location },
    /// The text is not a scenario: bad syntax, an unknown key, a wrong type, a bad duration.
    Parse {
        path: String,
        location: Option<Location>,
        /// The dotted key path the error is about, when it could be found.
        key: Option<String>,
        message: String,
    },
    /// The scenario deserialized but cannot run (a fault naming replica 7 of 3, a probability
    /// above one). The message names the key path.
    Invalid {
        path: String,
        location: Option<Location>,
        message: String,
    },
}

impl ScenarioFileError {
    pub fn path(&self) -> &str {
        match self {
            ScenarioFileError::Read { path, .. }
            | ScenarioFileError::TooLarge { path }
            | ScenarioFileError::NotRegular { path, .. }
            | ScenarioFileError::NotText { path, .. }
            | ScenarioFileError::Parse { path, .. }
            | ScenarioFileError::Invalid { path, .. } => path,
        }
    }
}

impl fmt::Display for ScenarioFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioFileError::Read { path, source } => {
                write!(f, "{path}: cannot read the file: {source}")
            }
            ScenarioFileError::TooLarge { path } => write!(
                f,
                "{path}: the file is larger than {} MiB (SCENARIO_FILE_BYTES_MAX); a scenario file \
                 is a few kilobytes",
                SCENARIO_FILE_BYTES_MAX / (1024 * 1024)
            ),
            ScenarioFileError::NotRegular { path, kind } => write!(
                f,
                "{path}: {kind}, not a regular file; converge reads scenarios from regular files only"
            ),
            ScenarioFileError::NotText { path, location } => write!(
                f,
                "{path}:{}:{}: not UTF-8 text; a scenario file is TOML or JSON text",
                location.line, location.column
            ),
            ScenarioFileError::Parse {
                path,
                location,
                key,
                message,
            } => {
                write!(f, "{path}")?;
                if let Some(location) = location {
                    write!(f, ":{}:{}", location.line, location.column)?;
                }
                match key {
                    Some(key) => write!(f, ": key `{}`: {message}", clean_key(key))?,
                    None => write!(f, ": {message}")?,
                }
                if let Some(location) = location {
                    write_quote(f, location)?;
                }
                Ok(())
            }
            ScenarioFileError::Invalid {
                path,
                location,
                message,
            } => {
                write!(f, "{path}")?;
                if let Some(location) = location {
                    write!(f, ":{}:{}", location.line, location.column)?;
                }
                write!(f, ": invalid scenario: {message}")?;
                if let Some(location) = location {
                    write_quote(f, location)?;
                }
                Ok(())
            }
        }
    }
}

fn write_quote(f: &mut fmt::Formatter<'_>, location: &Location) -> fmt::Result {
    let gutter = location.line.to_string().len();
    write!(
        f,
        "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>column$}",
        "",
        location.line,
        location.text,
        "",
        "^",
        column = location.quoted_column
    )
}

impl std::error::Error for ScenarioFileError {}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioFileError> {
    let shown = path.display().to_string();
    let read_error = |source| ScenarioFileError::Read {
        path: shown.clone(),
        source,
    };
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(OpenError::NotRegular(kind)) => {
            return Err(ScenarioFileError::NotRegular { path: shown, kind })
        }
        Err(OpenError::Io(source)) => return Err(read_error(source)),
    };
    // Reading at most one byte past the cap refuses a huge file without reading it all.
    let mut bytes = Vec::new();
    file.take(SCENARIO_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > SCENARIO_FILE_BYTES_MAX {
        return Err(ScenarioFileError::TooLarge { path: shown });
    }
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&error.as_bytes()[..valid]).into_owned();
        ScenarioFileError::NotText {
            path: shown.clone(),
            location: location_of(&prefix, valid),
        }
    })?;
    // Editors on some systems start a UTF-8 file with a byte order mark; neither parser wants it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    parse_and_validate(text, Format::of(path), &shown)
}

/// Why [`open_regular`] did not open a file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path names something other than a regular file: "a FIFO (named pipe)", "a
    /// directory", ...
    #[error("{0}, not a regular file")]
    NotRegular(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens `path` for reading if it is a regular file. A FIFO is opened without blocking (on Unix,
/// with `O_NONBLOCK`: opening a FIFO that no process writes to would otherwise wait forever, and
/// no Ctrl-C handler can end a blocked `open`), and what was opened is checked on the open handle
/// itself, so that a path swapped between a check and the open cannot slip through.
pub fn open_regular(path: &Path) -> Result<std::fs::File, OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Only FIFOs and devices heed O_NONBLOCK; a regular file reads as ever.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(OpenError::Io)?;
    let file_type = file.metadata().map_err(OpenError::Io)?.file_type();
    if file_type.is_file() {
        return Ok(file);
    }
    Err(OpenError::NotRegular(kind_of(file_type)))
}

/// What a file that is not regular is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Parses and validates scenario text; `path` is only used in messages.
pub fn parse_and_validate(
    text: &str,
    format: Format,
    path: &str,
) -> Result<Scenario, ScenarioFileError> {
    let scenario = parse(text, format, path)?;
    // A file is held to the run budget as well: what it asks for runs within the time and
    // memory docs/robustness.md promises, or is refused here naming the cap.
    (scenario.validate())
        .and_then(|()| scenario.validate_budget())
        .map_err(|error| {
            let message = error.to_string();
            // The validation error names a key path; point at it in the file when it can be found.
            let location = find_key_path(text, format, &message);
            ScenarioFileError::Invalid {
                path: path.to_string(),
                location,
                message,
            }
        })?;
    Ok(scenario)
}

/// Parses scenario text without validating it.
pub fn parse(text: &str, format: Format, path: &str) -> Result<Scenario, ScenarioFileError> {
    if text.len() as u64 > SCENARIO_FILE_BYTES_MAX {
        return Err(ScenarioFileError::TooLarge {
            path: path.to_string(),
        });
    }
    if let Some(offset) = too_deep_at(text, format) {
        return Err(ScenarioFileError::Parse {
            path: path.to_string(),
            location: Some(location_of(text, offset)),
            key: None,
            message: format!(
                "arrays and tables nested more than {NESTING_DEPTH_MAX} levels deep \
                 (NESTING_DEPTH_MAX); a scenario nests four at most"
            ),
        });
    }
    if format == Format::Json {
        if let Some(found) = json_top_level_not_object(text) {
            let offset = text.len() - text.trim_start().len();
            return Err(ScenarioFileError::Parse {
                path: path.to_string(),
                location: (found != "nothing").then(|| location_of(text, offset)),
                key: None,
                message: format!(
                    "expected a scenario, a table of keys (a JSON object `{{ ... }}`) at the top \
                     level; found {found}"
                ),
            });
        }
    }
    let scenario = parse_typed(text, format, path)?;
    if let Some(key) = array_for_a_table(text, format) {
        let message = format!(
            "expected a table (or a single value), found an array; only `{}` hold arrays",
            ARRAY_KEYS.join("`, `")
        );
        return Err(ScenarioFileError::Parse {
            path: path.to_string(),
            location: find_key_path(text, format, &format!("key `{key}`")),
            key: Some(key),
            message,
        });
    }
    Ok(scenario)
}

/// What a JSON text holds at the top level when that is not an object: "an array", "a number",
/// ... (a JSON array deserializes into a scenario positionally, field by field, which nobody
/// means).
fn json_top_level_not_object(text: &str) -> Option<&'static str> {
    match text.trim_start().chars().next() {
        Some('{') => None,
        Some('[') => Some("an array"),
        Some('"') => Some("a string"),
        Some('t' | 'f') => Some("a boolean"),
        Some('n') => Some("null"),
        Some(c) if c == '-' || c.is_ascii_digit() => Some("a number"),
        Some(_) => None,
        None => Some("nothing"),
    }
}

/// The keys of a scenario that hold arrays (`[]` stands for any element); everywhere else a
/// scenario has tables and single values.
const ARRAY_KEYS: [&str; 9] = [
    "workload.writers",
    "workload.ops",
    "network.links",
    "faults",
    "faults[].groups",
    "faults[].groups[]",
    "faults[].nodes",
    "script.fates",
    "script.coins",
];

/// The first key of a parsed scenario that holds an array where the scenario has a table: both
/// parsers accept an array for a table and read it positionally, field by field (`protocol =
/// ["op-broadcast", "mesh"]`), which nobody means. `None` when there is none (or the text does
/// not parse as a tree, which the typed parse has already reported).
fn array_for_a_table(text: &str, format: Format) -> Option<String> {
    let tree: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).ok()?,
        Format::Toml => serde_json::to_value(toml::from_str::<toml::Table>(text).ok()?).ok()?,
    };
    // (path as written, path with indices as `[]`, value)
    let mut stack: Vec<(String, String, &serde_json::Value)> =
        vec![(String::new(), String::new(), &tree)];
    while let Some((path, pattern, value)) = stack.pop() {
        match value {
            serde_json::Value::Array(items) => {
                if !ARRAY_KEYS.contains(&pattern.as_str()) {
                    return Some(path);
                }
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((format!("{path}[{i}]"), format!("{pattern}[]"), item));
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map.iter().rev() {
                    let join = |base: &str| {
                        if base.is_empty() {
                            key.clone()
                        } else {
                            format!("{base}.{key}")
                        }
                    };
                    stack.push((join(&path), join(&pattern), item));
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_typed(text: &str, format: Format, path: &str) -> Result<Scenario, ScenarioFileError> {
    match format {
        Format::Toml => toml::from_str::<Scenario>(text).map_err(|error| {
            let offset = error
                .span()
                .map(|span| refine_toml_offset(text, span.start, error.message()));
            ScenarioFileError::Parse {
                path: path.to_string(),
                location: offset.map(|o| location_of(text, o)),
                key: offset.and_then(|o| toml_key_path_at(text, o)),
                message: clean_message(&parser_message(error.message().trim())),
            }
        }),
        Format::Json => serde_json::from_str::<Scenario>(text).map_err(|error| {
            let (line, column) = (error.line(), error.column());
            let offset = (line > 0).then(|| offset_of(text, line, column));
            let location = offset.map(|o| location_of(text, o));
            // serde_json appends " at line L column C"; the location already says so.
            let message = error.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            ScenarioFileError::Parse {
                path: path.to_string(),
                location,
                key: offset.and_then(|o| json_key_path_at(text, o)),
                message: clean_message(&parser_message(&message)),
            }
        }),
    }
}

/// Rephrases the parsers' own nesting-limit messages ("recursion limit", "recursion limit
/// exceeded"), which say nothing about the file, in the words of [`NESTING_DEPTH_MAX`]'s check.
fn parser_message(message: &str) -> String {
    if message.starts_with("recursion limit") {
        "arrays, tables or dotted keys nested deeper than the parser accepts; a scenario nests \
         four levels at most"
            .to_string()
    } else {
        message.to_string()
    }
}

/// A parser's message made safe to print: control characters escaped (a hostile file can hold
/// terminal escape sequences, which messages echo back) and the middle of an overlong message
/// (a megabyte string value quoted in "invalid type: string ...") left out.
fn clean_message(message: &str) -> String {
    let visible: String = message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    let count = visible.chars().count();
    if count <= MESSAGE_CHARS_MAX {
        return visible;
    }
    let head: String = visible.chars().take(MESSAGE_CHARS_MAX / 2).collect();
    let tail: String = visible
        .chars()
        .skip(count - MESSAGE_CHARS_MAX / 3)
        .collect();
    format!(
        "{head}... ({} characters left out) ...{tail}",
        count - MESSAGE_CHARS_MAX / 2 - MESSAGE_CHARS_MAX / 3
    )
}

/// Characters of a key path shown: a key is a word or a few, unless the file is hostile.
const KEY_CHARS_MAX: usize = 80;

/// A key path made safe to print, like [`clean_message`]: control characters escaped and an
/// overlong path cut short.
fn clean_key(key: &str) -> String {
    let visible: String = key.chars().flat_map(char::escape_debug).collect();
    if visible.chars().count() <= KEY_CHARS_MAX {
        visible
    } else {
        let head: String = visible.chars().take(KEY_CHARS_MAX).collect();
        format!("{head}...")
    }
}

/// The byte offset at which arrays and tables (inline ones, and in JSON objects) first nest deeper
/// than [`NESTING_DEPTH_MAX`], if they do. Brackets inside strings and comments do not count. A
/// TOML table header (`[a]`, `[[a]]`) opens and closes on its line, so it counts as one or two
/// levels for a moment and never accumulates.
fn too_deep_at(text: &str, format: Format) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > NESTING_DEPTH_MAX {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if format == Format::Toml => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') if quote == b'"' || format == Format::Toml => {
                let triple = format == Format::Toml && bytes[i..].starts_with(&[quote; 3]);
                // Literal strings ('...') have no escapes; basic ones ("...") do.
                let escapes = quote == b'"';
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if escapes && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote && (!triple || bytes[i..].starts_with(&[quote; 3])) {
                        i += if triple { 2 } else { 0 };
                        break;
                    }
                    // A single-line string ends at the line's end even when unterminated, so
                    // that a stray quote does not hide the rest of the file from the count.
                    if !triple && bytes[i] == b'\n' && format == Format::Toml {
                        break;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Errors inside tagged tables (a `[[faults]]` entry, an inline `latency = { ... }`) come with the
/// span of the whole table, because serde buffers such tables before it knows their variant. This
/// narrows the offset to the key or value the message names (`unknown field `x``, `found "1q"`),
/// when it appears once in that table.
fn refine_toml_offset(text: &str, offset: usize, message: &str) -> usize {
    let Some(rest) = text.get(offset..) else {
        return offset;
    };
    let region = if rest.starts_with('[') {
        // A table header: the table runs to the next header.
        let body_start = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let body = &rest[body_start..];
        let mut end = body.len();
        let mut position = 0;
        for line in body.split_inclusive('\n') {
            if line.trim_start().starts_with('[') {
                end = position;
                break;
            }
            position += line.len();
        }
        (offset + body_start, offset + body_start + end)
    } else if rest.starts_with('{') {
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        (offset, offset + end)
    } else {
        return offset;
    };
    let haystack = &text[region.0..region.1];
    let quoted = |after: &str, open: char, close: char| -> Option<String> {
        let start = message.find(after)? + after.len();
        let tail = message[start..].strip_prefix(open)?;
        Some(tail[..tail.find(close)?].to_string())
    };
    let needles: Vec<(String, bool)> = [
        quoted("unknown field ", '`', '`').map(|k| (k, true)),
        quoted("found ", '"', '"').map(|v| (format!("\"{v}\""), false)),
        quoted("invalid type: string ", '"', '"').map(|v| (format!("\"{v}\""), false)),
        quoted("unknown variant ", '`', '`').map(|v| (format!("\"{v}\""), false)),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (needle, is_key) in needles {
        let hits: Vec<usize> = haystack
            .match_indices(needle.as_str())
            .map(|(i, _)| i)
            .filter(|&i| !is_key || haystack[i + needle.len()..].trim_start().starts_with('='))
            .collect();
        if let [only] = hits[..] {
            return region.0 + only;
        }
    }
    offset
}

/// The line and column (1-based, in characters) of a byte offset.
pub fn location_of(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    let (quoted, quoted_column) =
        quote_window(text[line_start..line_end].trim_end_matches('\r'), column);
    Location {
        line,
        column,
        text: quoted,
        quoted_column,
    }
}

/// At most [`QUOTE_CHARS_MAX`] characters of `line` around `column`, with `...` where it was cut
/// and control characters shown as `?` (one character each, so that the caret stays under the
/// column), and the column within the window.
fn quote_window(line: &str, column: usize) -> (String, usize) {
    let visible = |c: char| {
        if c == '\t' {
            ' '
        } else if c.is_control() {
            '?'
        } else {
            c
        }
    };
    let count = line.chars().count();
    if count <= QUOTE_CHARS_MAX {
        return (line.chars().map(visible).collect(), column);
    }
    let start = column.saturating_sub(1 + QUOTE_CHARS_MAX / 2);
    let end = (start + QUOTE_CHARS_MAX).min(count);
    let mut quoted = String::new();
    let mut shift = start;
    if start > 0 {
        quoted.push_str("...");
        shift = shift.saturating_sub(3);
    }
    quoted.extend(line.chars().skip(start).take(end - start).map(visible));
    if end < count {
        quoted.push_str("...");
    }
    (quoted, column.saturating_sub(shift).max(1))
}

/// The byte offset of a 1-based line and column (serde_json's columns count bytes).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The dotted key path at a byte offset of a TOML document: the table header in force (with the
/// index of an array-of-tables entry, `faults[1]`), any inline tables open around the offset, and
/// the key in front of it (or under it).
pub fn toml_key_path_at(text: &str, offset: usize) -> Option<String> {
    let mut table: Vec<String> = Vec::new();
    let mut array_counts: Vec<(String, usize)> = Vec::new();
    let mut statement: Option<(usize, usize)> = None;
    let mut position = 0;
    for line in text.split_inclusive('\n') {
        let line_end = position + line.len();
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|r| r.split("]]").next())
        {
            let name = name.trim().to_string();
            let index = match array_counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    array_counts.push((name.clone(), 1));
                    0
                }
            };
            table = vec![format!("{name}[{index}]")];
            statement = None;
            if offset < line_end {
                return Some(table.join("."));
            }
        } else if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
            let name = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim();
            table = vec![name.to_string()];
            statement = None;
            if offset < line_end {
                return Some(table.join("."));
            }
        } else {
            // A statement starts on a line with `key =`; continuation lines of a multi-line array
            // belong to the statement above.
            if starts_with_key(trimmed) {
                statement = Some((position, line_end));
            } else if let Some((start, _)) = statement {
                statement = Some((start, line_end));
            }
            if offset < line_end {
                let (start, _) = statement?;
                let inner = inline_key_path(
                    &text[start..offset.max(start)],
                    &text[offset.min(text.len())..],
                );
                let mut path = table.clone();
                path.extend(inner);
                return (!path.is_empty()).then(|| path.join("."));
            }
        }
        position = line_end;
    }
    (!table.is_empty()).then(|| table.join("."))
}

fn starts_with_key(trimmed: &str) -> bool {
    let key_end = trimmed.find('=');
    key_end.is_some_and(|end| {
        let key = trimmed[..end].trim();
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '))
    })
}

/// Keys open at the end of `before` (a statement's text up to the error), innermost last; if the
/// error sits on a key itself (`after` starts with `key =` or is an unknown key), that key ends the
/// path.
fn inline_key_path(before: &str, after: &str) -> Vec<String> {
    // Each frame: the key that opened it (None for arrays), and the pending key inside it.
    struct Frame {
        opened_by: Option<String>,
        pending: Option<String>,
    }
    let mut frames = vec![Frame {
        opened_by: None,
        pending: None,
    }];
    let mut word = String::new();
    let mut chars = before.chars().peekable();
    let mut last_word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut quoted = String::new();
                while let Some(q) = chars.next() {
                    if q == '\\' && c == '"' {
                        chars.next();
                        continue;
                    }
                    if q == c {
                        break;
                    }
                    quoted.push(q);
                }
                last_word = quoted;
            }
            '#' => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
            }
            '=' => {
                let key = if word.is_empty() {
                    last_word.clone()
                } else {
                    word.clone()
                };
                if let Some(frame) = frames.last_mut() {
                    frame.pending = Some(key);
                }
                word.clear();
            }
            '{' | '[' => {
                let opened_by = frames.last_mut().and_then(|f| f.pending.take());
                frames.push(Frame {
                    opened_by,
                    pending: None,
                });
                word.clear();
            }
            '}' | ']' => {
                if frames.len() > 1 {
                    frames.pop();
                }
                word.clear();
            }
            ',' => {
                if let Some(frame) = frames.last_mut() {
                    // In an inline table a comma ends the key's value; in an array it does not.
                    if frame.opened_by.is_some() && frame.pending.is_some() {
                        frame.pending = None;
                    }
                }
                word.clear();
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                if word.is_empty() {
                    last_word.clear();
                }
                word.push(c);
                last_word = word.clone();
            }
            _ => {
                if !word.is_empty() {
                    last_word = std::mem::take(&mut word);
                }
            }
        }
    }
    let mut path: Vec<String> = Vec::new();
    for frame in &frames {
        if let Some(key) = &frame.opened_by {
            path.push(key.clone());
        }
    }
    let innermost_pending = frames.last().and_then(|f| f.pending.clone());
    match innermost_pending {
        Some(key) => path.push(key),
        None => {
            // The error is on a key: an unknown field names itself.
            let key: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .collect();
            if !key.is_empty() {
                path.push(key);
            }
        }
    }
    path
}

/// The key path at a byte offset of a JSON document, as `faults[1].replica`.
pub fn json_key_path_at(text: &str, offset: usize) -> Option<String> {
    enum Frame {
        Object {
            key: Option<String>,
            expecting_key: bool,
        },
        Array {
            index: usize,
        },
    }
    let mut frames: Vec<Frame> = Vec::new();
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(Frame::Object { key, expecting_key }) = frames.last_mut() {
                    if *expecting_key {
                        *key = Some(
                            text.get(start..i.min(text.len()))
                                .unwrap_or_default()
                                .to_string(),
                        );
                        *expecting_key = false;
                    }
                }
            }
            b'{' => frames.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            b'[' => frames.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &frames {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    (!path.is_empty()).then_some(path)
}

/// Finds where a key path named in a validation message (`faults[1].replica`, `network.drop`) is
/// written in the file, so that the error can point at it.
fn find_key_path(text: &str, format: Format, message: &str) -> Option<Location> {
    let candidate = message
        .split(|c: char| c.is_whitespace() || matches!(c, '`' | '\'' | ':' | ','))
        .find(|word| {
            let root = word.split(['.', '[']).next().unwrap_or_default();
            !root.is_empty()
                && root.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && (word.contains('.') || word.contains('['))
        })?
        .trim_end_matches('.');
    // Walk every key occurrence and compare its path.
    let mut position = 0;
    // The last key name of the path: `groups` of `faults[0].groups[1][2]`. (Taking the text after
    // the last `]` gave an empty needle there, which matched everywhere and, stepping one byte at
    // a time, sliced a multi-byte character in half: found by the fuzz test.)
    let last = candidate
        .rsplit('.')
        .next()
        .and_then(|segment| segment.split('[').next())
        .filter(|name| !name.is_empty())?;
    // Each occurrence costs a scan of the text; on a huge file with the key on every line, the
    // search gives up rather than take quadratic time.
    let attempts_max = (KEY_SEARCH_BYTES_MAX / text.len().max(1)).max(1);
    let mut attempts = 0;
    while let Some(found) = text[position..].find(last) {
        attempts += 1;
        if attempts > attempts_max {
            return None;
        }
        let offset = position + found;
        let path = match format {
            Format::Toml => toml_key_path_at(text, offset),
            Format::Json => json_key_path_at(text, offset + last.len() + 1)
                .or_else(|| json_key_path_at(text, offset)),
        };
        if path.as_deref() == Some(candidate) {
            return Some(location_of(text, offset));
        }
        position = offset + last.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_paths_name_tables_arrays_and_inline_tables() {
        let text = "name = \"x\"\n[network]\ndrop = \"lots\"\nlatency = { kind = \"uniform\", min = \"1q\" }\n\
                    [[faults]]\nkind = \"join\"\n[[faults]]\nreplica = 9\n";
        let at = |needle: &str| toml_key_path_at(text, text.find(needle).unwrap());
        assert_eq!(at("\"x\"").as_deref(), Some("name"));
        assert_eq!(at("\"lots\"").as_deref(), Some("network.drop"));
        assert_eq!(at("\"1q\"").as_deref(), Some("network.latency.min"));
        assert_eq!(at("\"uniform\"").as_deref(), Some("network.latency.kind"));
        assert_eq!(at("9").as_deref(), Some("faults[1].replica"));
        assert_eq!(at("replica").as_deref(), Some("faults[1].replica"));
    }

    #[test]
    fn json_paths_name_objects_and_arrays() {
        let text = r#"{"network": {"drop": "lots"}, "faults": [{"kind": "join"}, {"replica": 9}]}"#;
        let at = |needle: &str| json_key_path_at(text, text.find(needle).unwrap());
        assert_eq!(at("\"lots\"").as_deref(), Some("network.drop"));
        assert_eq!(at("9").as_deref(), Some("faults[1].replica"));
    }

    /// Regression (probe of issue 17): a JSON array was read positionally as a scenario (its
    /// first element the name, its second the description, ...) and run.
    #[test]
    fn only_a_table_is_a_scenario() {
        let refused = |text: &str, format: Format| {
            let error = parse_and_validate(text, format, "x").expect_err("refused");
            error.to_string()
        };
        let message = refused(r#"["positional", "read field by field", 2]"#, Format::Json);
        assert!(
            message.starts_with("x:1:1: expected a scenario, a table of keys"),
            "{message}"
        );
        assert!(message.contains("found an array"), "{message}");
        for (text, found) in [
            ("3", "a number"),
            ("\"s\"", "a string"),
            ("null", "null"),
            (" ", "nothing"),
        ] {
            let message = refused(text, Format::Json);
            assert!(
                message.contains(&format!("found {found}")),
                "{text}: {message}"
            );
        }
        // Nested: a table written as an array, in either format.
        let message = refused(r#"{"protocol": ["op-broadcast", "mesh"]}"#, Format::Json);
        assert!(
            message.contains("key `protocol`: expected a table"),
            "{message}"
        );
        let message = refused("[workload]\nrate = 1.0\n[[faults]]\nkind = \"partition\"\nat = \"1s\"\ngroups = [[0]]\n[network]\nlatency = [\"constant\", \"5ms\"]\n", Format::Toml);
        assert!(
            message.contains("key `network.latency`: expected a table"),
            "{message}"
        );
        // The keys that do hold arrays are accepted.
        parse_and_validate(
            "[workload]\nwriters = [0, 1]\n[[faults]]\nkind = \"partition\"\nat = \"1s\"\nheal = \"2s\"\ngroups = [[0]]\n",
            Format::Toml,
            "x",
        )
        .unwrap();
    }

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let location = location_of("a = 1\nbé = 2\n", 10);
        assert_eq!((location.line, location.column), (2, 4));
        assert_eq!(location.text, "bé = 2");
    }
}
