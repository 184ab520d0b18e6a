//! `<cwd>/.iapeer/runtimes/<runtime>/launch.env`: the extra environment
//! and start arguments of one peer's runtime.

use std::path::Path;

use super::MAX_CONFIG_BYTES;
use crate::fsutil;
use crate::names::Runtime;

/// Extra child environment and start arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchEnv {
    pub env: Vec<(String, String)>,
    /// `PEER_START_ARGS`, split on whitespace.
    pub start_args: Vec<String>,
}

/// A variable name: a letter or `_`, then letters, digits and `_`.
fn env_key_ok(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Lines `KEY=VALUE` or `export KEY=VALUE`; blank, `#` and other lines are
/// ignored; a value wrapped in matching quotes is unwrapped. Nothing here is
/// ever given to a shell.
pub fn parse_launch_env(text: &str) -> LaunchEnv {
    let mut out = LaunchEnv::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !env_key_ok(key) || value.contains('\0') {
            continue;
        }
        let value = value.trim();
        let value = [b'"', b'\'']
            .iter()
            .find_map(|q| {
                let b = value.as_bytes();
                (b.len() >= 2 && b[0] == *q && b[b.len() - 1] == *q)
                    .then(|| &value[1..value.len() - 1])
            })
            .unwrap_or(value);
        if key == "PEER_START_ARGS" {
            out.start_args = value.split_whitespace().map(str::to_string).collect();
        } else {
            out.env.push((key.to_string(), value.to_string()));
        }
    }
    out
}

/// The launch.env of `runtime` in the peer folder `cwd`; none, or one that
/// cannot be read, is empty.
pub fn read_launch_env(cwd: &Path, runtime: &Runtime) -> LaunchEnv {
    let path = cwd
        .join(".iapeer/runtimes")
        .join(runtime.as_str())
        .join("launch.env");
    fsutil::read_regular_text(&path, MAX_CONFIG_BYTES)
        .map(|t| parse_launch_env(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_env_rules() {
        let e = parse_launch_env(
            "# comment\n\nFOO=bar\nexport QUOTED=\"a b\"\nSINGLE='x'\nPEER_START_ARGS=--model  opus\nnot an assignment\nBAD-KEY=1\nEMPTY=\n",
        );
        assert_eq!(
            e.env,
            [
                ("FOO".to_string(), "bar".to_string()),
                ("QUOTED".to_string(), "a b".to_string()),
                ("SINGLE".to_string(), "x".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        assert_eq!(e.start_args, ["--model", "opus"]);
    }
}
