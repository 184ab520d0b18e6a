//! Output that cannot hurt the terminal or the process: text from the
//! registry, profiles, adapters and panes is printed with its control
//! characters escaped (a cwd holding `ESC ] 0 ;` must not retitle the
//! operator's terminal), error lines are clipped and written in one
//! `write`, and a closed or full standard output never panics: the first
//! failure is remembered, later writes are skipped, and the binary's edge
//! reports it once (see [`output_failure`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Mutex;

/// The longest error line printed, in characters; the rest is summarised.
pub const MAX_ERROR_CHARS: usize = 2000;

/// Characters a terminal may act on: C0 and C1 controls, DEL, and the
/// bidirectional embeddings, overrides and isolates (which reorder what the
/// operator reads; the plain marks U+200E/U+200F of right-to-left text are
/// harmless and kept).
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_newlines,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// JSON text (as serde writes it: every C0 control inside a string is
/// already escaped) with the other unsafe characters written as `\uXXXX`,
/// which keeps it valid JSON. They can only occur inside strings.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(|c| c != '\n' && is_unsafe(c, true)) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c != '\n' && is_unsafe(c, true) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints a JSON document (pretty) and a newline, terminal-safe and valid.
pub fn out_json(value: &impl serde::Serialize) -> serde_json::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    out_raw(json_safe(&text).as_bytes());
    Ok(())
}

/// `s` with every control character written as an escape (`\x1b`,
/// `\u{9b}`); newlines and tabs are kept when `keep_newlines`.
pub fn escape_controls(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !is_unsafe(c, keep_newlines) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `s` cut to `max` characters, saying how much was left out.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} more bytes)", &s[..cut], s.len() - cut)),
    }
}

/// The reader of standard output went away (`iapeer logs -f | head`): not
/// a failure of the command.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// The first failure writing standard output, if any.
static STDOUT_FAILURE: Mutex<Option<io::Error>> = Mutex::new(None);

/// Writes `text` to standard output with its control characters escaped
/// (newlines and tabs kept). After a failure nothing more is written, so a
/// verb runs to its end and [`output_failure`] says what happened.
pub fn out(text: &str) {
    out_raw(escape_controls(text, true).as_bytes());
}

/// [`out`] without escaping, for bytes that are meant to reach the
/// terminal as they are (`iapeer logs --raw`).
pub fn out_raw(bytes: &[u8]) {
    let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    if failure.is_some() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        *failure = Some(e);
    }
}

/// Takes the first standard output failure.
pub fn output_failure() -> Option<io::Error> {
    STDOUT_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// Writes one line to standard error: control characters (newlines too)
/// escaped, clipped to [`MAX_ERROR_CHARS`], in a single `write`, so lines
/// of concurrent writers never interleave. A closed or full stderr is
/// ignored: there is nowhere left to report it.
pub fn err_line(line: &str) {
    let mut text = clip(&escape_controls(line, false), MAX_ERROR_CHARS).into_owned();
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A standard error writer that swallows failures: the daemon's log goes
/// on to its file when stderr goes away.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForgivingStderr;

impl Write for ForgivingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ForgivingStderr {
    type Writer = ForgivingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        ForgivingStderr
    }
}

/// `println!` that never panics: formats, escapes and writes through
/// [`out`].
#[macro_export]
macro_rules! outln {
    () => { $crate::term::out("\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::term::out(&line);
    }};
}

/// `print!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::term::out(&format!($($arg)*)) };
}

/// `eprintln!` that never panics: one escaped, clipped line through
/// [`err_line`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::term::err_line(&format!($($arg)*)) };
}

/// Terminal output as readable text: escape sequences (CSI, OSC, …) and
/// control characters other than newline and tab removed, CRs dropped.
pub fn strip_terminal(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte
                // (a newline ends an unterminated one, and stays).
                Some('[') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            out.push(c);
                            break;
                        }
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC / DCS / …: up to BEL or ST (ESC \). A newline ends
                // one too: an unterminated title must not swallow the rest
                // of the log.
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\n' {
                            out.push(c);
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Two-character sequences (ESC =, ESC ( B, …).
                Some('(' | ')' | '*' | '+') if chars.next() == Some('\n') => {
                    out.push('\n');
                }
                Some('\n') => out.push('\n'),
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional overrides and isolates: text that reads differently from
/// what it is (a log must not reorder itself on screen).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_output_becomes_text() {
        let raw =
            "\u{1b}[2J\u{1b}[H\u{1b}[1;32mhello\u{1b}[0m\r\n\u{1b}]0;title\u{7}world\u{1b}(B!\u{7}";
        assert_eq!(strip_terminal(raw), "hello\nworld!");
        // An unterminated OSC ends at the line; bidi overrides go.
        let raw = "a\u{1b}]0;never ends\nafter\u{202e}txt\u{2066}\u{61c}\n";
        assert_eq!(strip_terminal(raw), "a\naftertxt\n");
        // Nor does a cut CSI or a lone ESC eat the line break.
        let raw = "x\u{1b}[12\nafter\u{1b}\nnext\u{1b}(\nlast";
        assert_eq!(strip_terminal(raw), "x\nafter\nnext\nlast");
    }

    use super::*;

    #[test]
    fn controls_are_escaped() {
        let title = "/tmp/\u{1b}]0;pwned\u{7}x";
        assert_eq!(escape_controls(title, true), "/tmp/\\x1b]0;pwned\\x07x");
        assert_eq!(escape_controls("a\nb\tc", true), "a\nb\tc");
        assert_eq!(escape_controls("a\nb", false), "a\\x0ab");
        assert_eq!(escape_controls("\u{9b}31m", true), "\\u{9b}31m");
        assert_eq!(escape_controls("abc\u{202e}cba", true), "abc\\u{202e}cba");
        assert_eq!(escape_controls("שלום\u{200f} x", true), "שלום\u{200f} x");
        let json = serde_json::to_string(&"a\u{7f}b\u{9b}c\u{202e}\u{1b}").unwrap();
        let safe = json_safe(&json);
        assert_eq!(safe, r#""a\u007fb\u009bc\u202e\u001b""#);
        let back: String = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, "a\u{7f}b\u{9b}c\u{202e}\u{1b}");
        assert!(matches!(escape_controls("plain é", true), Cow::Borrowed(_)));
    }

    #[test]
    fn long_lines_are_clipped() {
        assert_eq!(clip("abcdef", 10), "abcdef");
        assert_eq!(clip("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(clip("ééé", 1), "é… (4 more bytes)");
    }
}
