//! Configuration: the `IAPEER_*` environment with the TypeScript iapeer's names and
//! defaults, then command-line overrides, folded into one immutable value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logfile::Rotation;
use crate::names::{Identity, Personality};
use crate::plugins::{CallBudgets, CompileCache, LimitCaps, PluginOptions};

/// A snapshot of the process environment (names and values as UTF-8, lossy).
pub type Env = BTreeMap<String, String>;

pub fn process_env() -> Env {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Command-line overrides; `None` keeps the environment's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub root: Option<PathBuf>,
    pub sock_dir: Option<PathBuf>,
    pub launch_agents_dir: Option<PathBuf>,
    pub systemd_user_dir: Option<PathBuf>,
    pub plugin_dirs: Vec<PathBuf>,
    pub no_builtin_plugins: bool,
    /// `runtime=path` binary overrides.
    pub bins: Vec<(String, String)>,
    pub boot_deadline_secs: Option<u64>,
    pub ready_gate_secs: Option<u64>,
    pub idle_secs: Option<u64>,
    pub max_age_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub home: PathBuf,
    /// `IAPEER_ROOT`, else `$HOME/.iapeer`.
    pub root: PathBuf,
    /// tmux sockets: `IAPEER_SOCK_DIR`, else `<root>/socks` (0700).
    pub sock_dir: PathBuf,
    /// `<root>/state/lifecycle`: marks, `.session` files, wake locks.
    pub state_dir: PathBuf,
    /// `<root>/logs/iapeer`: lifecycle.log and the daemon's log.
    pub log_dir: PathBuf,
    /// launchd plists (peers owned there are never touched) (`IAPEER_LAUNCHAGENTS_DIR`, else `~/Library/LaunchAgents`).
    pub launch_agents_dir: PathBuf,
    /// On Linux, systemd user units (idem) (`IAPEER_SYSTEMD_USER_DIR`, else
    /// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`).
    pub systemd_user_dir: PathBuf,
    pub boot_deadline: Duration,
    pub ready_gate: Duration,
    /// A boot screen the adapter neither answers nor calls ready fails the
    /// boot once unchanged this long (`IAPEER_STUCK_SCREEN_SECS`, 10).
    pub stuck_screen: Duration,
    pub idle_secs: u64,
    pub max_age_secs: u64,
    /// Crash-loop guard: this many deaths (`IAPEER_CRASHLOOP_MAX`, 3) …
    pub crashloop_max: u64,
    /// … within this many seconds (`IAPEER_CRASHLOOP_WINDOW_SECS`, 300).
    pub crashloop_window_secs: u64,
    /// How long a message may wait in the mailbox (`IAPEER_MAIL_TTL_SECS`).
    pub mail_ttl: Duration,
    /// An ephemeral peer that answered is reaped once quiet this long.
    pub ephemeral_quiet_secs: u64,
    /// An ephemeral peer that never answered is reaped once idle this long.
    pub ephemeral_idle_secs: u64,
    /// The most an adapter may declare it needs: `IAPEER_PLUGIN_MAX_MEMORY_MIB`
    /// (256) and `IAPEER_PLUGIN_MAX_CALL_MS` (30000).
    pub plugin_caps: LimitCaps,
    pub plugin_dirs: Vec<PathBuf>,
    pub builtin_plugins: bool,
    /// Compile cache (`IAPEER_CACHE_DIR`, else `<root>/cache/plugins`).
    pub cache_dir: PathBuf,
    /// `--bin runtime=path` overrides (they beat the adapter's env var).
    pub bin_overrides: BTreeMap<String, String>,
    /// Size bounds of `lifecycle.log` (`IAPEER_LIFECYCLE_LOG_MAX_BYTES` /
    /// `_KEEP`), `delivery.log` (`IAPEER_DELIVERY_LOG_MAX_BYTES` / `_KEEP`)
    /// and `iapeerd.log` (`IAPEER_DAEMON_LOG_MAX_BYTES` / `_KEEP`).
    pub lifecycle_log: Rotation,
    pub delivery_log: Rotation,
    pub daemon_log: Rotation,
    /// Pane logs (`IAPEER_PANE_LOG_MAX_BYTES` / `_KEEP`, 5 MiB × 2);
    /// `IAPEER_PANE_LOGS=0` turns them off.
    pub pane_log: Rotation,
    pub pane_logs: bool,
    /// The daemon's loopback TCP port (`IAPEER_PORT`, 8765; 0 picks a free
    /// one). `iapeerd --port` wins.
    pub port: u16,
    /// The daemon's Unix socket (`IAPEER_DAEMON_SOCKET`, else
    /// `<root>/state/iapeer/router.sock`).
    pub daemon_socket: PathBuf,
    /// `IAPEER_BEARER_TOKEN`: when set, every HTTP request must carry it.
    pub bearer_token: Option<String>,
    /// `IAPEER_OPERATOR` (`<runtime>-<personality>`, a registered peer): who
    /// the dashboard's send box and a fleet-API send without `from` speak
    /// as. Unset: the registry's one natural peer.
    pub operator: Option<String>,
    /// The environment the config was read from; launched sessions inherit it.
    pub env: Env,
}

/// Every environment variable iapeer reads, and what it sets (defaults
/// in parentheses): the one list `docs/operating.md` is checked against.
pub const VARIABLES: &[(&str, &str)] = &[
    ("IAPEER_ROOT", "the state root (~/.iapeer)"),
    (
        "IAPEER_SOCK_DIR",
        "the tmux socket directory (<root>/socks)",
    ),
    (
        "IAPEER_PLUGIN_DIR",
        "adapter directories, `:`-separated (<root>/plugins)",
    ),
    (
        "IAPEER_CACHE_DIR",
        "the adapters' compile cache (<root>/cache/plugins)",
    ),
    (
        "IAPEER_DAEMON_SOCKET",
        "the daemon's Unix socket (<root>/state/iapeer/router.sock)",
    ),
    (
        "IAPEER_PORT",
        "the daemon's loopback TCP port (8765; 0 picks a free one)",
    ),
    (
        "IAPEER_BEARER_TOKEN",
        "when set, every HTTP request must carry it",
    ),
    (
        "IAPEER_OPERATOR",
        "who the dashboard and a fleet-API send speak as (the one natural peer)",
    ),
    (
        "IAPEER_FLEET",
        "join the fleet at this NATS server, nats:// or tls:// (unset: one machine, no NATS)",
    ),
    (
        "IAPEER_HOST_NAME",
        "this host's name in the fleet (the machine's name)",
    ),
    (
        "IAPEER_FLEET_CREDS",
        "a NATS credentials file the daemon signs in to the fleet with",
    ),
    (
        "IAPEER_FLEET_NKEY",
        "a file (0600) holding this host's NATS user nkey seed",
    ),
    (
        "IAPEER_FLEET_CA",
        "a CA certificate the fleet server's TLS certificate is checked against",
    ),
    (
        "IAPEER_LAUNCHAGENTS_DIR",
        "where launchd plists say a peer is launchd's (~/Library/LaunchAgents)",
    ),
    (
        "IAPEER_SYSTEMD_USER_DIR",
        "where systemd user units say a peer is systemd's (~/.config/systemd/user)",
    ),
    (
        "IAPEER_CLAUDE_BIN",
        "the claude binary (~/.local/bin/claude)",
    ),
    ("IAPEER_CODEX_BIN", "the codex binary (codex on PATH)"),
    ("TELEGRAM_RUNTIME_BIN", "the Telegram bridge's binary"),
    ("NOTIFIER_RUNTIME_BIN", "the notifier bridge's binary"),
    (
        "IAPEER_BOOT_DEADLINE_SECS",
        "seconds a TUI may take to show its composer (240)",
    ),
    (
        "IAPEER_READY_GATE_SECS",
        "seconds for the first message to be seen processed (120)",
    ),
    (
        "IAPEER_STUCK_SCREEN_SECS",
        "seconds an unknown boot screen may stay unchanged (10)",
    ),
    (
        "IAPEER_IDLE_SECS",
        "idle seconds after which a session is reaped (3600)",
    ),
    (
        "IAPEER_EPHEMERAL_QUIET_SECS",
        "quiet seconds after which an ephemeral peer that answered is reaped (20)",
    ),
    (
        "IAPEER_EPHEMERAL_IDLE_SECS",
        "idle seconds after which an ephemeral peer that never answered is reaped (600)",
    ),
    (
        "IAPEER_MAX_AGE_SECS",
        "age at which a session whose activity cannot be read is reaped (14400)",
    ),
    (
        "IAPEER_CRASHLOOP_MAX",
        "deaths that leave a peer asleep (3; 0 turns the guard off)",
    ),
    (
        "IAPEER_CRASHLOOP_WINDOW_SECS",
        "… within this many seconds (300)",
    ),
    (
        "IAPEER_MAIL_TTL_SECS",
        "seconds a message may wait in the mailbox before it is dead-lettered and its sender told (86400)",
    ),
    (
        "IAPEER_PLUGIN_MAX_MEMORY_MIB",
        "the most memory an adapter may declare (256)",
    ),
    (
        "IAPEER_PLUGIN_MAX_CALL_MS",
        "the longest call an adapter may declare (30000)",
    ),
    (
        "IAPEER_LIFECYCLE_LOG_MAX_BYTES",
        "lifecycle.log rotates at this size (5 MiB)",
    ),
    (
        "IAPEER_LIFECYCLE_LOG_KEEP",
        "… keeping this many old files (5)",
    ),
    (
        "IAPEER_DELIVERY_LOG_MAX_BYTES",
        "delivery.log rotates at this size (5 MiB)",
    ),
    (
        "IAPEER_DELIVERY_LOG_KEEP",
        "… keeping this many old files (5)",
    ),
    (
        "IAPEER_DAEMON_LOG_MAX_BYTES",
        "iapeerd.log rotates at this size (5 MiB)",
    ),
    (
        "IAPEER_DAEMON_LOG_KEEP",
        "… keeping this many old files (5)",
    ),
    (
        "IAPEER_PANE_LOG_MAX_BYTES",
        "each session's pane log rotates at this size (5 MiB)",
    ),
    ("IAPEER_PANE_LOG_KEEP", "… keeping this many old files (2)"),
    (
        "IAPEER_PANE_LOGS",
        "0, false, no or off turns pane logs off (on)",
    ),
    (
        "PEER_IDENTITY",
        "who `iapeer send` speaks as when --from is not given (set in every session)",
    ),
    (
        "XDG_CONFIG_HOME",
        "where systemd user units are looked for, when IAPEER_SYSTEMD_USER_DIR is unset",
    ),
    (
        "RUST_LOG",
        "the log filter when --log is not given (iapeer: warn; iapeerd: info)",
    ),
];

pub const DEFAULT_BOOT_DEADLINE_SECS: u64 = 240;
pub const DEFAULT_READY_GATE_SECS: u64 = 120;
pub const DEFAULT_IDLE_SECS: u64 = 3600;
pub const DEFAULT_MAX_AGE_SECS: u64 = 14400;

/// Longest accepted duration setting (~31 years), so deadline arithmetic
/// can never overflow.
pub const MAX_SECS: u64 = 1_000_000_000;

/// A number setting whose value is not a whole number in its range. Blank
/// counts as unset; anything else that does not parse is this error, never
/// the default in disguise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: expected a whole number from {min} to {max}")]
pub struct BadNumber {
    /// The variable (`IAPEER_IDLE_SECS`) or flag (`--idle-secs`).
    pub name: String,
    pub value: String,
    pub min: u64,
    pub max: u64,
}

/// `raw` as a whole number in `min..=max`; `None` (unset or blank) is
/// `default`.
pub fn number_in(
    name: &str,
    raw: Option<&str>,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, BadNumber> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| BadNumber {
            name: name.to_string(),
            value: raw.to_string(),
            min,
            max,
        })
}

/// The command line's parser for a duration flag: the same range as the
/// environment's.
pub fn parse_secs(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SECS).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_SECS}")),
    }
}

fn non_blank<'a>(env: &'a Env, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The home directory from the password database (when `$HOME` is unset).
fn passwd_home() -> Option<PathBuf> {
    // SAFETY: getpwuid returns static storage or NULL; the path is copied out
    // before any other call.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir)
            .to_string_lossy()
            .into_owned();
        (!dir.is_empty()).then(|| PathBuf::from(dir))
    }
}

/// Relative paths are taken against the current directory, so every
/// process agrees on the same sockets and state whatever its cwd.
fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|cwd| cwd.join(&p)).unwrap_or(p)
    }
}

impl Config {
    /// Fails on a number setting that is set but not a number in its range.
    pub fn new(env: Env, o: &Overrides) -> Result<Config, BadNumber> {
        let home = non_blank(&env, "HOME")
            .map(PathBuf::from)
            .or_else(passwd_home)
            .unwrap_or_else(|| PathBuf::from("/"));
        let env_root = non_blank(&env, "IAPEER_ROOT").map(PathBuf::from);
        let root = absolute(
            o.root
                .clone()
                .or_else(|| env_root.clone())
                .unwrap_or_else(|| home.join(".iapeer")),
        );
        // Always under the root by default: a shared /tmp (the TypeScript iapeer's
        // default) lets another user squat socket names or listen on them.
        let sock_dir = absolute(
            o.sock_dir
                .clone()
                .or_else(|| non_blank(&env, "IAPEER_SOCK_DIR").map(PathBuf::from))
                .unwrap_or_else(|| root.join("socks")),
        );
        let launch_agents_dir = o
            .launch_agents_dir
            .clone()
            .or_else(|| non_blank(&env, "IAPEER_LAUNCHAGENTS_DIR").map(PathBuf::from))
            .unwrap_or_else(|| home.join("Library/LaunchAgents"));
        let systemd_user_dir = o
            .systemd_user_dir
            .clone()
            .or_else(|| non_blank(&env, "IAPEER_SYSTEMD_USER_DIR").map(PathBuf::from))
            .or_else(|| {
                non_blank(&env, "XDG_CONFIG_HOME").map(|x| Path::new(x).join("systemd/user"))
            })
            .unwrap_or_else(|| home.join(".config/systemd/user"));
        let ranged = |var: &str, min: u64, max: u64, default: u64| {
            number_in(var, env.get(var).map(String::as_str), min, max, default)
        };
        // A flag (already checked by clap) beats its variable.
        let secs = |flag: Option<u64>, var: &str, default: u64| match flag {
            Some(n) => Ok(n),
            None => ranged(var, 1, MAX_SECS, default),
        };
        let plugin_dirs = if !o.plugin_dirs.is_empty() {
            o.plugin_dirs.clone()
        } else if let Some(dirs) = non_blank(&env, "IAPEER_PLUGIN_DIR") {
            dirs.split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect()
        } else {
            vec![root.join("plugins")]
        };
        let rotation = |var: &str, default_keep: u32| -> Result<Rotation, BadNumber> {
            Ok(Rotation {
                max_bytes: ranged(
                    &format!("{var}_MAX_BYTES"),
                    1,
                    u64::MAX,
                    Rotation::default().max_bytes,
                )?,
                // 0 keeps no old file: the log is cut in place.
                keep: ranged(&format!("{var}_KEEP"), 0, 100, u64::from(default_keep))? as u32,
            })
        };
        let daemon_socket = non_blank(&env, "IAPEER_DAEMON_SOCKET")
            .map(|s| absolute(PathBuf::from(s)))
            .unwrap_or_else(|| root.join("state/iapeer/router.sock"));
        let cache_dir = non_blank(&env, "IAPEER_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("cache/plugins"));
        Ok(Config {
            state_dir: root.join("state/lifecycle"),
            log_dir: root.join("logs/iapeer"),
            boot_deadline: Duration::from_secs(secs(
                o.boot_deadline_secs,
                "IAPEER_BOOT_DEADLINE_SECS",
                DEFAULT_BOOT_DEADLINE_SECS,
            )?),
            ready_gate: Duration::from_secs(secs(
                o.ready_gate_secs,
                "IAPEER_READY_GATE_SECS",
                DEFAULT_READY_GATE_SECS,
            )?),
            stuck_screen: Duration::from_secs(secs(None, "IAPEER_STUCK_SCREEN_SECS", 10)?),
            idle_secs: secs(o.idle_secs, "IAPEER_IDLE_SECS", DEFAULT_IDLE_SECS)?,
            max_age_secs: secs(o.max_age_secs, "IAPEER_MAX_AGE_SECS", DEFAULT_MAX_AGE_SECS)?,
            // 0 is meaningful here: the guard is off.
            crashloop_max: ranged("IAPEER_CRASHLOOP_MAX", 0, 1_000_000, 3)?,
            crashloop_window_secs: secs(None, "IAPEER_CRASHLOOP_WINDOW_SECS", 300)?,
            mail_ttl: Duration::from_secs(secs(None, "IAPEER_MAIL_TTL_SECS", 86_400)?),
            ephemeral_quiet_secs: secs(None, "IAPEER_EPHEMERAL_QUIET_SECS", 20)?,
            ephemeral_idle_secs: secs(None, "IAPEER_EPHEMERAL_IDLE_SECS", 600)?,
            plugin_caps: LimitCaps {
                memory: (ranged("IAPEER_PLUGIN_MAX_MEMORY_MIB", 1, 1 << 16, 256)? as usize) << 20,
                call: Duration::from_millis(ranged(
                    "IAPEER_PLUGIN_MAX_CALL_MS",
                    1,
                    MAX_SECS,
                    30_000,
                )?),
            },
            builtin_plugins: !o.no_builtin_plugins,
            // A bare PATH (no runtime) is `plugins try`'s own.
            bin_overrides: o
                .bins
                .iter()
                .filter(|(rt, _)| !rt.is_empty())
                .cloned()
                .collect(),
            home,
            root,
            sock_dir,
            launch_agents_dir,
            systemd_user_dir,
            plugin_dirs,
            cache_dir,
            lifecycle_log: rotation("IAPEER_LIFECYCLE_LOG", Rotation::default().keep)?,
            delivery_log: rotation("IAPEER_DELIVERY_LOG", Rotation::default().keep)?,
            daemon_log: rotation("IAPEER_DAEMON_LOG", Rotation::default().keep)?,
            pane_log: rotation("IAPEER_PANE_LOG", 2)?,
            pane_logs: !non_blank(&env, "IAPEER_PANE_LOGS").is_some_and(|v| {
                ["0", "false", "no", "off"]
                    .iter()
                    .any(|off| v.eq_ignore_ascii_case(off))
            }),
            daemon_socket,
            port: ranged("IAPEER_PORT", 0, u64::from(u16::MAX), 8765)? as u16,
            bearer_token: non_blank(&env, "IAPEER_BEARER_TOKEN").map(str::to_string),
            operator: non_blank(&env, "IAPEER_OPERATOR").map(|s| s.trim().to_string()),
            env,
        })
    }

    pub fn plugin_options(&self) -> PluginOptions {
        PluginOptions {
            home: self.home.clone(),
            plugin_dirs: self.plugin_dirs.clone(),
            builtins: self.builtin_plugins,
            cache: CompileCache::new(Some(&self.cache_dir)),
            budgets: CallBudgets::default(),
            caps: self.plugin_caps,
            grants: Some(crate::plugins::grants_path(&self.root)),
        }
    }

    /// `<root>/peers-profiles.json`
    /// The state root, the tmux socket dir and the daemon socket's dir,
    /// where they exist, must be this user's alone: another user who could
    /// write there could delete a peer's socket and get a second session
    /// started beside the first.
    pub fn check_private_dirs(&self) -> Result<(), crate::fsutil::UntrustedDir> {
        let socket_dir = self.daemon_socket.parent().unwrap_or(&self.root);
        for dir in [&self.root, &self.sock_dir, socket_dir] {
            crate::fsutil::check_private_dir(dir)?;
        }
        Ok(())
    }

    /// The mailbox: `<root>/state/mail.db`.
    pub fn mail_path(&self) -> PathBuf {
        self.root.join("state/mail.db")
    }

    pub fn registry_path(&self) -> PathBuf {
        self.root.join("peers-profiles.json")
    }

    /// `<sockDir>/tmux-iap-<identity>.sock`
    pub fn socket_path(&self, identity: &Identity) -> PathBuf {
        self.sock_dir.join(format!("tmux-iap-{identity}.sock"))
    }

    /// `<stateDir>/<identity>.<suffix>`
    pub fn state_file(&self, identity: &Identity, suffix: &str) -> PathBuf {
        self.state_dir.join(format!("{identity}.{suffix}"))
    }

    /// The files that say a personality is owned elsewhere: the launchd plist, and on Linux
    /// the systemd user unit that plays the same role.
    pub fn supervisor_unit_paths(&self, p: &Personality) -> [PathBuf; 2] {
        [
            self.launch_agents_dir.join(format!("com.iapeer.{p}.plist")),
            self.systemd_user_dir.join(format!("iapeer-{p}.service")),
        ]
    }

    /// The binary for an adapter: `--bin runtime=…`, else the adapter's
    /// override variable (when non-blank), else its default with `~/`
    /// expanded against `$HOME`.
    pub fn resolve_binary(&self, runtime: &str, binary_env: Option<&str>, default: &str) -> String {
        if let Some(b) = self.bin_overrides.get(runtime) {
            return b.clone();
        }
        if let Some(b) = binary_env.and_then(|var| non_blank(&self.env, var)) {
            return b.to_string();
        }
        match default.strip_prefix("~/") {
            Some(rest) => self.home.join(rest).to_string_lossy().into_owned(),
            None => default.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `"IAPEER_…"` name in the source is in [`VARIABLES`] (or is the
    /// stem of a rotation pair there), and `docs/operating.md` has its row,
    /// word for word.
    #[test]
    fn every_variable_is_listed_once_and_documented() {
        let listed: Vec<&str> = VARIABLES.iter().map(|(name, _)| *name).collect();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src];
        let mut unlisted = Vec::new();
        while let Some(f) = files.pop() {
            if f.is_dir() {
                files.extend(std::fs::read_dir(&f).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for (i, _) in text.match_indices("\"IAPEER_") {
                let name: String = text[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let stem = |suffix: &str| listed.contains(&format!("{name}{suffix}").as_str());
                // A test's made-up name; a prefix (`starts_with("IAPEER_")`).
                let test_only = name == "IAPEER_BEARER" || name.ends_with('_');
                let known = listed.contains(&name.as_str())
                    || (stem("_MAX_BYTES") && stem("_KEEP"))
                    || test_only;
                if !known {
                    unlisted.push(format!("{name} ({})", f.display()));
                }
            }
        }
        assert!(
            unlisted.is_empty(),
            "not in config::VARIABLES: {unlisted:?}"
        );
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operating.md"),
        )
        .unwrap();
        for (name, what) in VARIABLES {
            assert!(
                doc.contains(&format!("| `{name}` | {what} |")),
                "docs/operating.md has no row `| `{name}` | {what} |`"
            );
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_bad_number_is_an_error_naming_the_variable() {
        assert_eq!(number_in("V", None, 1, 9, 7), Ok(7));
        assert_eq!(number_in("V", Some("  "), 1, 9, 7), Ok(7));
        assert_eq!(number_in("V", Some(" 4 "), 1, 9, 7), Ok(4));
        for bad in [
            "12abc",
            "3.9",
            "0",
            "-5",
            "+",
            "abc",
            "10",
            "99999999999999999999999",
        ] {
            let e = number_in("V", Some(bad), 1, 9, 7).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("V={bad:?}: expected a whole number from 1 to 9")
            );
        }
        let e = Config::new(
            env(&[("HOME", "/h"), ("IAPEER_IDLE_SECS", "1h")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.name, "IAPEER_IDLE_SECS");
        // 0 turns the crash-loop guard off and keeps no old log file.
        let c = Config::new(
            env(&[
                ("HOME", "/h"),
                ("IAPEER_CRASHLOOP_MAX", "0"),
                ("IAPEER_PANE_LOG_KEEP", "0"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!((c.crashloop_max, c.pane_log.keep), (0, 0));
        assert!(parse_secs("0").is_err() && parse_secs("x").is_err());
        assert_eq!(parse_secs("30"), Ok(30));
    }

    #[test]
    fn defaults() {
        let c = Config::new(env(&[("HOME", "/h")]), &Overrides::default()).unwrap();
        assert_eq!(c.root, Path::new("/h/.iapeer"));
        assert_eq!(c.sock_dir, Path::new("/h/.iapeer/socks"));
        assert_eq!(c.state_dir, Path::new("/h/.iapeer/state/lifecycle"));
        assert_eq!(c.launch_agents_dir, Path::new("/h/Library/LaunchAgents"));
        assert_eq!(c.systemd_user_dir, Path::new("/h/.config/systemd/user"));
        assert_eq!(c.boot_deadline, Duration::from_secs(240));
        assert_eq!(c.ready_gate, Duration::from_secs(120));
        assert_eq!(c.idle_secs, 3600);
        assert_eq!(c.max_age_secs, 14400);
        assert_eq!(c.plugin_dirs, vec![PathBuf::from("/h/.iapeer/plugins")]);
        assert_eq!(
            c.resolve_binary("claude", Some("IAPEER_CLAUDE_BIN"), "~/.local/bin/claude"),
            "/h/.local/bin/claude"
        );
        assert_eq!(
            c.resolve_binary("codex", Some("IAPEER_CODEX_BIN"), "codex"),
            "codex"
        );
    }

    #[test]
    fn environment_and_flags() {
        let e = env(&[
            ("HOME", "/h"),
            ("IAPEER_ROOT", " /r "),
            ("IAPEER_IDLE_SECS", ""),
            ("IAPEER_BOOT_DEADLINE_SECS", "5"),
            ("IAPEER_CLAUDE_BIN", "/bin/fake-claude"),
            ("IAPEER_CODEX_BIN", "  "),
            ("IAPEER_PLUGIN_DIR", "/p1:/p2"),
        ]);
        let c = Config::new(e.clone(), &Overrides::default()).unwrap();
        assert_eq!(c.root, Path::new("/r"));
        assert_eq!(c.sock_dir, Path::new("/r/socks"));
        assert_eq!(c.idle_secs, 3600);
        assert_eq!(c.boot_deadline, Duration::from_secs(5));
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/p1"), PathBuf::from("/p2")]
        );
        assert_eq!(
            c.resolve_binary("claude", Some("IAPEER_CLAUDE_BIN"), "x"),
            "/bin/fake-claude"
        );
        assert_eq!(
            c.resolve_binary("codex", Some("IAPEER_CODEX_BIN"), "codex"),
            "codex"
        );

        let o = Overrides {
            root: Some("/flag".into()),
            idle_secs: Some(9),
            bins: vec![("claude".into(), "/flag/claude".into())],
            plugin_dirs: vec!["/pf".into()],
            ..Default::default()
        };
        let c = Config::new(e, &o).unwrap();
        assert_eq!(c.root, Path::new("/flag"));
        assert_eq!(c.idle_secs, 9);
        assert_eq!(c.plugin_dirs, vec![PathBuf::from("/pf")]);
        assert_eq!(
            c.resolve_binary("claude", Some("IAPEER_CLAUDE_BIN"), "x"),
            "/flag/claude"
        );
    }
}
