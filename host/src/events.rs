//! The operator-facing event logs under `<root>/logs/iapeer/`, one logfmt
//! line per event (`ts=… ev=… k=v…`):
//! - `lifecycle.log`: wake decisions, supervise actions, attach, …
//! - `delivery.log`: one `ev=delivery` line per message routed (the body is
//!   never logged).
//!
//! Both are size-rotated and written by the daemon and CLI processes alike;
//! the fleet API's event stream tails them. Logging never fails an action.

use crate::clock::{Clock, SystemClock, iso8601_utc};
use crate::config::Config;
use crate::logfile;

/// Which event log a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum EventLog {
    Lifecycle,
    Delivery,
}

impl EventLog {
    pub const ALL: [EventLog; 2] = [EventLog::Lifecycle, EventLog::Delivery];

    pub fn path(self, cfg: &Config) -> std::path::PathBuf {
        cfg.log_dir.join(format!("{}.log", <&str>::from(self)))
    }

    fn rotation(self, cfg: &Config) -> logfile::Rotation {
        match self {
            EventLog::Lifecycle => cfg.lifecycle_log,
            EventLog::Delivery => cfg.delivery_log,
        }
    }
}

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

/// Appends lines to an event log in one write (a supervise pass logs all
/// its outcomes at once).
pub fn append_to(cfg: &Config, log: EventLog, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    for l in lines {
        tracing::debug!(target: "iapeer::events", "{}", l.trim_end());
    }
    let _ = logfile::append(&log.path(cfg), lines.concat().as_bytes(), log.rotation(cfg));
}

/// Appends lines to `lifecycle.log`.
pub fn append(cfg: &Config, lines: &[String]) {
    append_to(cfg, EventLog::Lifecycle, lines);
}

/// Appends one event to `lifecycle.log`.
pub fn log(cfg: &Config, ev: &str, fields: &[(&str, &str)]) {
    append(cfg, &[line(ev, fields)]);
}

/// Parses one logfmt line back into its fields (the inverse of [`line`]).
pub fn parse_line(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim_end();
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].to_string();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            // A Rust-escaped string: find the closing quote, honouring `\`.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or(quoted.len());
            let raw = &quoted[..end];
            rest = quoted.get(end + 1..).unwrap_or("");
            unescape(raw)
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        out.push((key, value));
    }
    out
}

/// Undoes Rust's `{:?}` escaping of a string (`\n`, `\"`, `\\`, `\u{…}`).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|&c| c == '{')
                    .take_while(|&c| c != '}')
                    .collect();
                if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("k=v"), "\"k=v\"");
        assert_eq!(quote("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
    }

    #[test]
    fn lines_parse_back() {
        let l = line(
            "delivery",
            &[
                ("caller", "claude-alice"),
                ("err", "peer \"x\" = gone\nnext \\ line \u{1b}"),
                ("empty", ""),
            ],
        );
        let fields = parse_line(&l);
        assert_eq!(fields[0].0, "ts");
        assert_eq!(fields[1], ("ev".into(), "delivery".into()));
        assert_eq!(fields[2], ("caller".into(), "claude-alice".into()));
        assert_eq!(
            fields[3],
            (
                "err".into(),
                "peer \"x\" = gone\nnext \\ line \u{1b}".into()
            )
        );
        assert_eq!(fields[4], ("empty".into(), String::new()));
    }
}
