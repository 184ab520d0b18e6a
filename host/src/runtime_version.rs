//! What a runtime binary says its version is (`<binary> --version`), for
//! a boot that failed at a screen its adapter does not know and for
//! `iapeer doctor`: the first thing to compare with the versions the
//! adapter was verified with.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// A binary that has not answered by then is not going to.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A version is one short line: more than this is not read.
const READ_AT_MOST: usize = 4096;

/// The first non-empty line `binary --version` prints, its terminal
/// sequences and control characters gone, cut at 80 characters; `None`
/// when it prints none in time. The binary is killed once that line is
/// read (a child it left holding the pipe costs nothing), and at most
/// [`READ_AT_MOST`] bytes are ever held.
pub async fn of(binary: &str, env: &BTreeMap<String, String>) -> Option<String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let mut read = Vec::new();
    let _ = tokio::time::timeout(ANSWER_WITHIN, async {
        let mut chunk = [0u8; 512];
        while read.len() < READ_AT_MOST && !has_a_line(&read) {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read.extend_from_slice(&chunk[..n.min(READ_AT_MOST - read.len())]),
            }
        }
    })
    .await;
    // One that said its line and failed was refusing `--version`; one still
    // running (or holding the pipe through a child) said what it had to.
    let failed = matches!(
        tokio::time::timeout(Duration::from_millis(200), child.wait()).await,
        Ok(Ok(status)) if !status.success()
    );
    let _ = child.start_kill();
    first_line(&String::from_utf8_lossy(&read)).filter(|_| !failed)
}

/// Whether `bytes` hold a finished line with something on it.
fn has_a_line(bytes: &[u8]) -> bool {
    bytes
        .split(|b| *b == b'\n')
        .rev()
        .skip(1)
        .any(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
}

fn first_line(text: &str) -> Option<String> {
    let text = crate::term::strip_terminal(text);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let clean: String = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    Some(clean)
}

/// The versions an adapter says it was verified with: the build metadata
/// of its own version after `verified.` (`0.2.1+verified.2.1.332` →
/// `2.1.332`), or nothing when it says none.
pub fn verified_with(adapter_version: &str) -> Option<String> {
    let meta = adapter_version.split_once('+')?.1;
    meta.strip_prefix("verified.")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_cleaned_and_cut() {
        assert_eq!(
            first_line("\n  2.1.332 (Claude Code)\nmore\n").as_deref(),
            Some("2.1.332 (Claude Code)")
        );
        assert_eq!(
            first_line("codex-cli\t0.171.0\x07").as_deref(),
            Some("codex-cli 0.171.0")
        );
        assert_eq!(first_line(&"9".repeat(200)).unwrap().len(), 80);
        assert_eq!(first_line(" \n\n"), None);
        assert_eq!(
            first_line("\u{1b}]0;TITLE\u{7}\u{1b}[2J\u{1b}[31m9.9.9\u{1b}[0m\n").as_deref(),
            Some("9.9.9")
        );
        assert!(has_a_line(b"\n 2.1.332\n") && !has_a_line(b"2.1.3") && !has_a_line(b" \n"));
    }

    #[test]
    fn verified_versions_come_from_build_metadata() {
        assert_eq!(
            verified_with("0.2.1+verified.2.1.332").as_deref(),
            Some("2.1.332")
        );
        assert_eq!(verified_with("0.2.1"), None);
        assert_eq!(verified_with("0.2.1+build.7"), None);
    }
}

#[cfg(test)]
mod live {
    use super::*;

    #[tokio::test]
    async fn a_binary_that_fails_or_is_missing_has_no_version() {
        let env = BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]);
        assert_eq!(of("/bin/false", &env).await, None);
        assert_eq!(of("/nonexistent/claude", &env).await, None);
    }
}
