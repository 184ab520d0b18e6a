//! `<root>/logs/iapeer/lifecycle.log`: one logfmt line per lifecycle
//! decision (`ts=… ev=wake personality=… mode=… cause=…`), for operators.
//! Logging never fails a lifecycle action.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::clock::{Clock, SystemClock, iso8601_utc};
use crate::config::Config;
use crate::fsutil;

fn quote(v: &str) -> String {
    if v.is_empty() {
        "\"\"".into()
    } else if v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') {
        format!("{:?}", v)
    } else {
        v.to_string()
    }
}

/// Appends one event; fields with an empty key are skipped.
pub fn log(cfg: &Config, ev: &str, fields: &[(&str, &str)]) {
    let mut line = format!("ts={} ev={ev}", iso8601_utc(SystemClock.now_ms()));
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", quote(v)));
    }
    line.push('\n');
    tracing::debug!(target: "iapeer::events", "{}", line.trim_end());
    if fsutil::ensure_private_dir(&cfg.log_dir).is_err() {
        return;
    }
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(fsutil::FILE_MODE)
        .open(cfg.log_dir.join("lifecycle.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::quote("plain"), "plain");
        assert_eq!(super::quote(""), "\"\"");
        assert_eq!(super::quote("a b"), "\"a b\"");
        assert_eq!(super::quote("k=v"), "\"k=v\"");
    }
}
