//! Text for the terminal. Every string a user or a file provided (scenario names, paths, report
//! fields read back, parser messages) goes through [`clean`] before it is printed, so that a name
//! holding terminal escape sequences (`\x1b[2J` clears the screen, OSC 52 writes the clipboard)
//! is shown escaped and never acted on.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1: escapes, carriage returns, newlines, bells)
/// written as its Rust escape (`\u{1b}`, `\r`, `\n`). Text without any is returned as it is.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// [`clean`], keeping newlines: for multi-line messages (an error with a quoted line) whose
/// line structure is converge's own.
pub fn clean_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| clean(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `value` as pretty JSON for stdout. JSON escapes C0 control characters in strings itself, but
/// not DEL and the C1 controls (U+007F to U+009F; U+009B starts an escape sequence on some
/// terminals): those are written as `\u` escapes too, which leaves the document the same JSON.
pub fn json(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    if !text.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return Ok(text);
    }
    Ok(text
        .chars()
        .map(|c| {
            if ('\u{7f}'..='\u{9f}').contains(&c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_the_terminal_escaped() {
        assert_eq!(clean("plain name"), "plain name");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("bell\u{7}\r\n"), "bell\\u{7}\\r\\n");
        assert_eq!(clean("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(clean_lines("one\u{1b}\ntwo"), "one\\u{1b}\ntwo");
    }

    #[test]
    fn json_for_the_terminal_escapes_every_control_and_stays_the_same_json() {
        let value = serde_json::json!({"name": "a\u{1b}b\u{9b}c\u{7f}"});
        let text = json(&value).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }
}
