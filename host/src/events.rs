//! `<root>/logs/iapeer/lifecycle.log`: one logfmt line per lifecycle
//! decision (`ts=… ev=wake personality=… mode=… cause=…`), for operators.
//! Logging never fails a lifecycle action.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::clock::{Clock, SystemClock, iso8601_utc};
use crate::config::Config;
use crate::fsutil;

/// A logfmt value: quoted (Rust string escapes, so control characters are
/// escaped and a value never spans lines) when it has spaces, quotes, `=`
/// or controls; clipped to a sane length.
fn quote(v: &str) -> String {
    let v: String = v.chars().take(1000).collect();
    if v.is_empty() {
        "\"\"".into()
    } else if v
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=')
    {
        format!("{v:?}")
    } else {
        v
    }
}

/// One logfmt line: `ts=… ev=<ev> k=v…`.
pub fn line(ev: &str, fields: &[(&str, &str)]) -> String {
    let mut line = format!("ts={} ev={ev}", iso8601_utc(SystemClock.now_ms()));
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", quote(v)));
    }
    line.push('\n');
    line
}

/// Appends lines in one write (a supervise pass logs all its outcomes at once).
pub fn append(cfg: &Config, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    for l in lines {
        tracing::debug!(target: "iapeer::events", "{}", l.trim_end());
    }
    if fsutil::ensure_private_dir(&cfg.log_dir).is_err() {
        return;
    }
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(fsutil::FILE_MODE)
        .open(cfg.log_dir.join("lifecycle.log"))
    {
        let _ = f.write_all(lines.concat().as_bytes());
    }
}

/// Appends one event.
pub fn log(cfg: &Config, ev: &str, fields: &[(&str, &str)]) {
    append(cfg, &[line(ev, fields)]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::quote("plain"), "plain");
        assert_eq!(super::quote(""), "\"\"");
        assert_eq!(super::quote("a b"), "\"a b\"");
        assert_eq!(super::quote("k=v"), "\"k=v\"");
        assert_eq!(super::quote("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
    }
}
