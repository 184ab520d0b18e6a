//! What a runtime binary says its version is (`<binary> --version`), for
//! a boot that failed at a screen its adapter does not know and for
//! `iapeer doctor`: the first thing to compare with the versions the
//! adapter was verified with.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// A binary that has not answered by then is not going to.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The first non-empty line `binary --version` prints, cleaned of control
/// characters and cut at 80 characters; `None` when it fails or is silent.
pub async fn of(binary: &str, env: &BTreeMap<String, String>) -> Option<String> {
    let mut cmd = Command::new(binary);
    cmd.arg("--version")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(ANSWER_WITHIN, cmd.output())
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    first_line(&String::from_utf8_lossy(&out.stdout))
}

fn first_line(text: &str) -> Option<String> {
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
        assert_eq!(first_line("codex-cli\t0.171.0\x07").as_deref(), Some("codex-cli 0.171.0"));
        assert_eq!(first_line(&"9".repeat(200)).unwrap().len(), 80);
        assert_eq!(first_line(" \n\n"), None);
    }

    #[test]
    fn verified_versions_come_from_build_metadata() {
        assert_eq!(verified_with("0.2.1+verified.2.1.332").as_deref(), Some("2.1.332"));
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
