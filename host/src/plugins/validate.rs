//! Checks on what an adapter says about itself (`info`) and on what it asks
//! the host to run (`build-launch`). An adapter is untrusted input.

use super::secrets::{plain_relative_components, touches_cwd_secret, touches_secret_store};
use super::types::{AdapterInfo, LaunchCommand, LaunchSpec};
use super::types::{DeliveryMarkers, RawInfo};
use crate::names::Runtime;

const MAX_READ_DIRS: usize = 16;
/// Entries of the other lists in `info` (binary dirs, env names, markers).
const MAX_LIST: usize = 32;
const MAX_COMPOSER_ROWS: u32 = 20;
const MAX_TEXT: usize = 4096;

fn env_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Variables that make the dynamic loader, a shell or an interpreter run
/// extra code, or that redirect where programs are found: an adapter
/// supplies data for its runtime, never these.
fn is_loader_variable(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "PROMPT_COMMAND",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "RUBYLIB",
        "JAVA_TOOL_OPTIONS",
        "GIT_SSH_COMMAND",
    ];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&upper.as_str())
        || upper.starts_with("LD_")
        || upper.starts_with("DYLD_")
        || upper.starts_with("BASH_FUNC_")
}

fn binary_env_ok(name: &str) -> bool {
    name.len() <= 64
        && name.ends_with("_BIN")
        && name.as_bytes()[0].is_ascii_uppercase()
        && name
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

fn plain_text_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(char::is_control)
}

/// The largest single argument or environment value a launch may carry.
const MAX_ARG_BYTES: usize = 128 << 10;

/// `info` → a validated `AdapterInfo`, or the reason it is not acceptable.
pub fn info(raw: RawInfo) -> Result<AdapterInfo, String> {
    let runtime = Runtime::new(raw.runtime.clone()).map_err(|_| {
        format!(
            "info().runtime {:?} is not a valid runtime id (^[a-z][a-z0-9]{{0,31}}$)",
            raw.runtime
        )
    })?;
    semver::Version::parse(&raw.version)
        .map_err(|e| format!("info().version {:?} is not semver: {e}", raw.version))?;
    if !plain_text_ok(&raw.default_binary) {
        return Err(format!(
            "info().default-binary {:?} is empty, too long or has control characters",
            raw.default_binary
        ));
    }
    if let Some(env) = raw.binary_env.as_deref().filter(|e| !binary_env_ok(e)) {
        return Err(format!(
            "info().binary-env {env:?} must match ^[A-Z][A-Z0-9_]*_BIN$"
        ));
    }
    if let Some(i) = raw
        .requires_intelligence
        .as_deref()
        .filter(|i| !crate::names::is_valid_personality(i))
    {
        return Err(format!(
            "info().requires-intelligence {i:?} is not a valid intelligence"
        ));
    }
    if raw.read_dirs.len() > MAX_READ_DIRS {
        return Err(format!(
            "info().read-dirs declares {} directories (at most {MAX_READ_DIRS})",
            raw.read_dirs.len()
        ));
    }
    if let Some(home) = raw
        .read_dirs
        .iter()
        .find(|d| matches!(d.trim_end_matches('/'), "" | "." | "~" | "$HOME"))
    {
        return Err(format!(
            "info().read-dirs entry {home:?} is the whole home directory; no grant can allow it"
        ));
    }
    if let Some(bad) = raw
        .read_dirs
        .iter()
        .find(|d| d.len() > MAX_TEXT || plain_relative_components(d).is_none())
    {
        return Err(format!(
            "info().read-dirs entry {bad:?} must be a home-relative path without `.`/`..` components"
        ));
    }
    if let Some(dir) = raw.read_dirs.iter().find(|d| !d.is_ascii()) {
        return Err(format!(
            "info().read-dirs entry {dir:?} is not ASCII (a case-folded name could alias a secret store)"
        ));
    }
    if let Some((dir, secret)) = raw
        .read_dirs
        .iter()
        .find_map(|d| touches_secret_store(d).map(|s| (d, s)))
    {
        return Err(format!(
            "info().read-dirs entry {dir:?} would expose ~/{secret} (a secret store); no grant can allow it"
        ));
    }
    check_cwd_read_paths(&raw.cwd_read_paths)?;
    // The `plugins new` template's placeholder: an adapter that still
    // carries it watches a file no runtime writes, so every wake with a
    // message would wait out the ready gate for nothing.
    if let Some(todo) = raw
        .cwd_read_paths
        .iter()
        .chain(&raw.read_dirs)
        .find(|p| p.starts_with("TODO"))
    {
        return Err(format!(
            "info() still declares the template's placeholder {todo:?}: name the file \
             the runtime writes as it works (ACTIVITY_FILE in src/lib.rs)"
        ));
    }
    let default_intelligence = match raw.default_intelligence.as_deref() {
        Some(i) if crate::registry::INTELLIGENCES.contains(&i) => i.to_string(),
        Some(i) => {
            return Err(format!(
                "info().default-intelligence {i:?} is not one of {}",
                crate::registry::INTELLIGENCES.join(", ")
            ));
        }
        // A 0.1 host knew the natures of a few runtimes by name.
        None if raw.contract == (0, 1) => {
            crate::registry::Intelligence::default_for(runtime.as_str()).to_string()
        }
        None => "artificial".to_string(),
    };
    if raw.binary_dirs.len() > MAX_LIST {
        return Err(format!(
            "info().binary-dirs has more than {MAX_LIST} entries"
        ));
    }
    if let Some(bad) = raw.binary_dirs.iter().find(|d| {
        let rest = d.strip_prefix("~/").unwrap_or(d);
        !(d.starts_with('/') || d.starts_with("~/"))
            || !plain_text_ok(d)
            || d.contains(':')
            || rest.split('/').any(|c| c == "..")
    }) {
        return Err(format!(
            "info().binary-dirs entry {bad:?} must be absolute or start with ~/, without `:` or `..`"
        ));
    }
    if raw.env_remove.len() > MAX_LIST {
        return Err(format!(
            "info().env-remove has more than {MAX_LIST} entries"
        ));
    }
    if let Some(bad) = raw
        .env_remove
        .iter()
        .find(|e| !env_name_ok(e.strip_suffix('*').unwrap_or(e)))
    {
        return Err(format!(
            "info().env-remove entry {bad:?} must be a variable name, or a name prefix ending in *"
        ));
    }
    // What the host itself sets for every session is not the adapter's to take.
    const HOST_SET: [&str; 5] = [
        "PEER_PERSONALITY",
        "PEER_RUNTIME",
        "PEER_IDENTITY",
        "HOME",
        "PATH",
    ];
    if let Some((bad, var)) = raw.env_remove.iter().find_map(|pattern| {
        HOST_SET
            .iter()
            .find(|v| match pattern.strip_suffix('*') {
                Some(prefix) => v.starts_with(prefix),
                None => *v == pattern,
            })
            .map(|v| (pattern, v))
    }) {
        return Err(format!(
            "info().env-remove entry {bad:?} would remove {var}, which the host sets for every session"
        ));
    }
    if raw.paste_placeholders.len() > MAX_LIST {
        return Err(format!(
            "info().delivery.paste-placeholders has more than {MAX_LIST} entries"
        ));
    }
    if let Some(bad) = raw
        .paste_placeholders
        .iter()
        .find(|m| !plain_text_ok(m) || m.chars().count() > 64)
    {
        return Err(format!(
            "info().delivery.paste-placeholders entry {bad:?} must be 1 to 64 printable characters"
        ));
    }
    if !(1..=MAX_COMPOSER_ROWS).contains(&raw.composer_rows) {
        return Err(format!(
            "info().delivery.composer-rows {} must be 1 to {MAX_COMPOSER_ROWS}",
            raw.composer_rows
        ));
    }
    if let Some(l) = raw
        .limits
        .filter(|l| l.memory_mib == 0 || l.call_ms == 0 || l.scan_ms == 0)
    {
        return Err(format!(
            "info().limits {l:?}: every limit must be above zero"
        ));
    }
    Ok(AdapterInfo {
        runtime,
        version: raw.version,
        kind: raw.kind,
        uses_doctrine: raw.uses_doctrine,
        requires_intelligence: raw.requires_intelligence,
        default_binary: raw.default_binary,
        binary_env: raw.binary_env,
        read_dirs: raw.read_dirs,
        cwd_read_paths: raw.cwd_read_paths,
        default_intelligence,
        binary_dirs: raw.binary_dirs,
        env_remove: raw.env_remove,
        delivery: DeliveryMarkers {
            paste_placeholders: raw.paste_placeholders,
            composer_rows: raw.composer_rows as usize,
        },
        limits: raw.limits,
        contract: format!("{}.{}", raw.contract.0, raw.contract.1),
    })
}

fn check_cwd_read_paths(paths: &[String]) -> Result<(), String> {
    if paths.len() > MAX_READ_DIRS {
        return Err(format!(
            "info().cwd-read-paths declares {} paths (at most {MAX_READ_DIRS})",
            paths.len()
        ));
    }
    for p in paths {
        if plain_relative_components(p).is_none() || p.len() > MAX_TEXT {
            return Err(format!(
                "info().cwd-read-paths entry {p:?} must be a cwd-relative path without `.`/`..` components"
            ));
        }
        if !p.is_ascii() {
            return Err(format!(
                "info().cwd-read-paths entry {p:?} is not ASCII (a case-folded name could alias a secret)"
            ));
        }
        let secret = touches_cwd_secret(p).or_else(|| touches_secret_store(p));
        if let Some(secret) = secret {
            return Err(format!(
                "info().cwd-read-paths entry {p:?} would expose {secret} (a secret store); no grant can allow it"
            ));
        }
    }
    Ok(())
}

/// The contract's rules for a launch command: the resolved binary first, the
/// extra arguments last and unchanged, no NUL bytes, sane env names.
pub fn launch_command(spec: &LaunchSpec, cmd: &LaunchCommand) -> Result<(), String> {
    match cmd.argv.first() {
        None => return Err("build-launch returned an empty argv".into()),
        Some(first) if *first != spec.binary => {
            return Err(format!(
                "build-launch argv[0] is {first:?}, not the resolved binary {:?}",
                spec.binary
            ));
        }
        _ => {}
    }
    if let Some(arg) = cmd.argv.iter().find(|a| a.contains('\0')) {
        return Err(format!("build-launch argument {arg:?} contains NUL"));
    }
    // Linux refuses a single argument over 128 KiB at exec; say so here,
    // where the adapter can be named, not as a failed spawn in a pane.
    if let Some(arg) = cmd.argv.iter().find(|a| a.len() > MAX_ARG_BYTES) {
        return Err(format!(
            "build-launch argument of {} bytes (at most {MAX_ARG_BYTES})",
            arg.len()
        ));
    }
    if !cmd.argv.ends_with(&spec.extra_args) {
        return Err("build-launch did not put the extra arguments last".into());
    }
    for (name, value) in &cmd.env {
        if is_loader_variable(name) {
            return Err(format!(
                "build-launch env {name} changes how programs load or start; adapters may not set it"
            ));
        }
        if !env_name_ok(name) {
            return Err(format!(
                "build-launch env name {name:?} is not a valid variable name"
            ));
        }
        if value.contains('\0') {
            return Err(format!("build-launch env {name} contains NUL"));
        }
        if value.len() > MAX_ARG_BYTES {
            return Err(format!(
                "build-launch env {name} is {} bytes (at most {MAX_ARG_BYTES})",
                value.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::types::AdapterKind;

    fn raw() -> RawInfo {
        RawInfo {
            runtime: "claude".into(),
            version: "0.1.0".into(),
            kind: AdapterKind::Tui,
            uses_doctrine: true,
            requires_intelligence: None,
            default_binary: "~/.local/bin/claude".into(),
            binary_env: Some("IAPEER_CLAUDE_BIN".into()),
            read_dirs: vec![".claude/projects".into()],
            ..crate::plugins::v0_1::legacy_defaults((0, 2))
        }
    }

    #[test]
    fn accepts_a_good_info() {
        assert_eq!(info(raw()).unwrap().runtime.as_str(), "claude");
    }

    #[test]
    fn rejects_bad_infos() {
        type Mutation = fn(&mut RawInfo);
        let cases: Vec<(Mutation, &str)> = vec![
            (|r| r.runtime = "Bad Runtime".into(), "runtime"),
            (|r| r.runtime = "my-rt".into(), "runtime"),
            (|r| r.version = "one".into(), "semver"),
            (|r| r.cwd_read_paths = vec!["../x".into()], "cwd-relative"),
            (
                |r| r.cwd_read_paths = vec!["TODO-the-file-the-runtime-writes".into()],
                "placeholder",
            ),
            (|r| r.cwd_read_paths = vec![".env".into()], "secret"),
            (|r| r.cwd_read_paths = vec![".git/config".into()], "secret"),
            (|r| r.cwd_read_paths = vec![".SSH/id_rsa".into()], "secret"),
            (
                |r| r.default_intelligence = Some("genius".into()),
                "default-intelligence",
            ),
            (|r| r.binary_dirs = vec!["bin".into()], "binary-dirs"),
            (|r| r.binary_dirs = vec!["/a:/b".into()], "binary-dirs"),
            (|r| r.env_remove = vec!["*".into()], "env-remove"),
            (|r| r.env_remove = vec!["PEER_*".into()], "host sets"),
            (|r| r.env_remove = vec!["HOME".into()], "host sets"),
            (|r| r.env_remove = vec!["P*".into()], "host sets"),
            (|r| r.cwd_read_paths = vec![".env.local".into()], "secret"),
            (
                |r| r.paste_placeholders = vec!["".into()],
                "paste-placeholders",
            ),
            (|r| r.composer_rows = 0, "composer-rows"),
            (
                |r| {
                    r.limits = Some(crate::plugins::types::DeclaredLimits {
                        memory_mib: 0,
                        call_ms: 1,
                        scan_ms: 1,
                    })
                },
                "above zero",
            ),
            (|r| r.default_binary = "".into(), "default-binary"),
            (|r| r.default_binary = "a\nb".into(), "default-binary"),
            (|r| r.binary_env = Some("PATH".into()), "binary-env"),
            (
                |r| r.binary_env = Some("ld_preload_BIN".into()),
                "binary-env",
            ),
            (|r| r.read_dirs = vec!["../etc".into()], "read-dirs"),
            (|r| r.read_dirs = vec!["/etc".into()], "read-dirs"),
            (
                |r| r.read_dirs = vec!["".into()],
                "the whole home directory",
            ),
            (
                |r| r.read_dirs = vec![".".into()],
                "the whole home directory",
            ),
            (
                |r| r.read_dirs = vec![".ssh".into()],
                "~/.ssh (a secret store)",
            ),
            (|r| r.read_dirs = vec![".aws/sso".into()], "~/.aws"),
            (|r| r.read_dirs = vec![".config".into()], "~/.config/gcloud"),
            (
                |r| r.read_dirs = vec!["Library".into()],
                "~/Library/Keychains",
            ),
            (|r| r.read_dirs = vec![".iapeer/state".into()], "~/.iapeer"),
            (|r| r.read_dirs = vec![".SSH/keys".into()], "~/.ssh"),
            (
                |r| r.read_dirs = vec![".codex".into()],
                "~/.codex/auth.json",
            ),
            (|r| r.read_dirs = vec![".\u{17f}sh".into()], "not ASCII"),
            (
                |r| r.requires_intelligence = Some("Natural!".into()),
                "intelligence",
            ),
        ];
        for (mutate, needle) in cases {
            let mut r = raw();
            mutate(&mut r);
            let err = info(r).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn ordinary_dirs_are_no_secret_stores() {
        for d in [
            ".claude/projects",
            ".codex/sessions",
            ".gemini/tmp",
            ".config/aider",
            ".sshd-notes",
        ] {
            assert_eq!(touches_secret_store(d), None, "{d}");
        }
    }

    #[test]
    fn launch_command_rules() {
        let spec = LaunchSpec {
            binary: "/bin/claude".into(),
            extra_args: vec!["--x".into()],
            ..Default::default()
        };
        let ok = LaunchCommand {
            argv: vec!["/bin/claude".into(), "--a".into(), "--x".into()],
            env: vec![("IAPEER_BEARER".into(), "v".into())],
        };
        assert!(launch_command(&spec, &ok).is_ok());
        let mut c = ok.clone();
        c.argv[0] = "/bin/sh".into();
        assert!(launch_command(&spec, &c).unwrap_err().contains("argv[0]"));
        let mut c = ok.clone();
        c.argv.pop();
        assert!(launch_command(&spec, &c).unwrap_err().contains("extra"));
        let mut c = ok.clone();
        c.env[0].0 = "A=B".into();
        assert!(launch_command(&spec, &c).is_err());
        for loader in [
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "PATH",
            "BASH_ENV",
            "ld_library_path",
        ] {
            let mut c = ok.clone();
            c.env[0].0 = loader.into();
            assert!(
                launch_command(&spec, &c).unwrap_err().contains("load"),
                "{loader}"
            );
        }
        let mut c = ok.clone();
        c.argv.insert(1, "a\0b".into());
        assert!(launch_command(&spec, &c).is_err());
        let c = LaunchCommand {
            argv: vec![],
            env: vec![],
        };
        assert!(launch_command(&spec, &c).is_err());
    }
}
