//! `iapeer mcp-config claude|codex [PEER] [--write]`: what a real Claude
//! Code or Codex CLI session needs to reach this daemon's `send_to_peer`
//! under its own identity. Every session the host launches has
//! `PEER_IDENTITY` in its environment; both clients can turn an environment
//! variable into the `X-IAPeer-Identity` header:
//!
//! - Claude Code: a project `.mcp.json` in the peer's folder, `type: http`,
//!   with `${PEER_IDENTITY}` expanded in `headers` (Claude Code ≥ 2.1.119),
//!   plus `enabledMcpjsonServers` in `.claude/settings.local.json` so the
//!   server is approved without a prompt. Claude Code reads a folder's
//!   `.claude/` settings only once the folder is trusted, so `--write` also
//!   records the trust in `~/.claude.json` (`projects.<cwd>`), as answering
//!   its trust dialog does (iapeerd answers it at every peer's boot anyway).
//! - Codex: `[mcp_servers.iapeer]` in `$CODEX_HOME/config.toml` (default
//!   `~/.codex`) with `env_http_headers` naming the variable; one user-level
//!   entry serves every peer.
//!
//! `--write` merges into the existing files (other servers and settings are
//! kept) and is idempotent.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::fsutil;
use crate::registry;

/// The name of the server entry in the clients' configs.
const SERVER: &str = "iapeer";
/// A wake can take the boot deadline plus the ready gate: give the tool
/// call that long and more (milliseconds for Claude Code, seconds for Codex).
const TOOL_TIMEOUT_SECS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    Claude,
    Codex,
}

/// The MCP URL clients should use: the running daemon's, else the
/// configured port's.
fn mcp_url(cfg: &Config) -> anyhow::Result<String> {
    if let Some(tcp) = crate::discovery::read(cfg).and_then(|d| d.tcp) {
        return Ok(tcp);
    }
    if cfg.port == 0 {
        anyhow::bail!(
            "IAPEER_PORT=0: the daemon picks its port when it starts; start iapeerd, then run this again"
        );
    }
    Ok(format!("http://127.0.0.1:{}/mcp", cfg.port))
}

pub fn run(cfg: &Config, client: Client, peer: Option<&str>, write: bool) -> anyhow::Result<i32> {
    let url = mcp_url(cfg)?;
    let bearer = cfg.bearer_token.is_some();
    let cwd = match peer {
        Some(p) => Some(peer_cwd(cfg, p)?),
        None => None,
    };
    match client {
        Client::Claude => claude(cfg, &url, bearer, cwd.as_deref(), write),
        Client::Codex => codex(cfg, &url, bearer, write),
    }
}

fn peer_cwd(cfg: &Config, personality: &str) -> anyhow::Result<PathBuf> {
    let registry = registry::read_registry(&cfg.registry_path())?;
    let peer = registry
        .find(personality)
        .with_context(|| format!("peer {personality:?} is not registered"))?;
    Ok(peer.cwd.clone())
}

/// The `mcpServers.iapeer` entry of a Claude Code `.mcp.json`.
fn claude_entry(url: &str, bearer: bool) -> Value {
    let mut headers = Map::new();
    headers.insert("X-IAPeer-Identity".into(), json!("${PEER_IDENTITY}"));
    if bearer {
        headers.insert(
            "Authorization".into(),
            json!("Bearer ${IAPEER_BEARER_TOKEN}"),
        );
    }
    json!({
        "type": "http",
        "url": url,
        "headers": headers,
        "timeout": TOOL_TIMEOUT_SECS * 1000,
    })
}

fn read_json_object(path: &Path) -> anyhow::Result<Map<String, Value>> {
    match fsutil::read_regular_text(path, 16 << 20) {
        Ok(text) if text.trim().is_empty() => Ok(Map::new()),
        Ok(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => bail!("{} is not a JSON object; not touching it", path.display()),
            Err(e) => bail!(
                "{} is not valid JSON ({e}); not touching it",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `doc` to `path` unless it already says exactly that.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<bool> {
    if fsutil::read_regular_text(path, 16 << 20).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    // These files are the operator's and the client's: a rewrite keeps
    // their mode (a new one is private).
    let mode = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| m.permissions());
    fsutil::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, mode)
            .with_context(|| format!("cannot keep the mode of {}", path.display()))?;
    }
    Ok(true)
}

fn report(path: &Path, changed: bool, what: &str) {
    let verb = if changed { "wrote" } else { "unchanged" };
    crate::outln!("{verb} {} ({what})", path.display());
}

fn claude(
    cfg: &Config,
    url: &str,
    bearer: bool,
    cwd: Option<&Path>,
    write: bool,
) -> anyhow::Result<i32> {
    let entry = claude_entry(url, bearer);
    let Some(cwd) = cwd else {
        if write {
            bail!("claude: name a peer to --write its <cwd>/.mcp.json");
        }
        crate::term::out_json(&json!({ "mcpServers": { SERVER: entry } }))?;
        crate::errln!(
            "# put this in a peer folder's .mcp.json (Claude Code >= 2.1.119 expands ${{PEER_IDENTITY}} in headers),"
        );
        crate::errln!(
            "# and approve it with \"enabledMcpjsonServers\": [\"{SERVER}\"] in .claude/settings.local.json;"
        );
        crate::errln!("# `iapeer mcp-config claude PEER --write` does both");
        return Ok(0);
    };
    let mcp_path = cwd.join(".mcp.json");
    let mut doc = read_json_object(&mcp_path)?;
    let servers = doc
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(servers) = servers else {
        bail!("{}: mcpServers is not an object", mcp_path.display());
    };
    servers.insert(SERVER.into(), entry);
    let mcp_text = format!("{}\n", serde_json::to_string_pretty(&Value::Object(doc))?);
    if !write {
        crate::outln!("# {}", mcp_path.display());
        // File content, printed as it would be written.
        crate::term::out_raw(mcp_text.as_bytes());
        return Ok(0);
    }
    report(
        &mcp_path,
        write_if_changed(&mcp_path, &mcp_text)?,
        "mcpServers.iapeer",
    );

    let settings_path = cwd.join(".claude/settings.local.json");
    let mut settings = read_json_object(&settings_path)?;
    let enabled = settings
        .entry("enabledMcpjsonServers")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(enabled) = enabled else {
        bail!(
            "{}: enabledMcpjsonServers is not an array",
            settings_path.display()
        );
    };
    if !enabled.iter().any(|v| v == SERVER) {
        enabled.push(json!(SERVER));
    }
    let settings_text = format!(
        "{}\n",
        serde_json::to_string_pretty(&Value::Object(settings))?
    );
    report(
        &settings_path,
        write_if_changed(&settings_path, &settings_text)?,
        "enabledMcpjsonServers",
    );
    let state_path = claude_state_path(cfg);
    match trust_folder(&state_path, cwd) {
        Ok(changed) => report(&state_path, changed, "the folder trusted"),
        Err(e) => {
            crate::errln!("note: {e:#}");
            crate::errln!(
                "note: until Claude Code trusts {} it shows iapeer as \"Pending approval\"; the peer's first wake trusts it, or run `claude` there once and answer Yes",
                cwd.display()
            );
        }
    }
    Ok(0)
}

/// Claude Code's own state file: `$CLAUDE_CONFIG_DIR/.claude.json`, else
/// `~/.claude.json`.
fn claude_state_path(cfg: &Config) -> PathBuf {
    cfg.env
        .get("CLAUDE_CONFIG_DIR")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.home.clone())
        .join(".claude.json")
}

/// `projects.<cwd>.hasTrustDialogAccepted = true` in Claude Code's state
/// file, everything else kept; whether it changed anything.
fn trust_folder(state_path: &Path, cwd: &Path) -> anyhow::Result<bool> {
    let mut state = read_json_object(state_path)?;
    let projects = state
        .entry("projects")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(projects) = projects else {
        bail!(
            "{}: projects is not an object; not touching it",
            state_path.display()
        );
    };
    let key = cwd.to_string_lossy().into_owned();
    let project = projects
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(project) = project else {
        bail!(
            "{}: projects.{} is not an object; not touching it",
            state_path.display(),
            cwd.display()
        );
    };
    if project.get("hasTrustDialogAccepted") == Some(&Value::Bool(true)) {
        return Ok(false);
    }
    project.insert("hasTrustDialogAccepted".into(), Value::Bool(true));
    let text = format!("{}\n", serde_json::to_string_pretty(&Value::Object(state))?);
    write_if_changed(state_path, &text)
}

fn codex_config_path(cfg: &Config) -> PathBuf {
    cfg.env
        .get("CODEX_HOME")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.home.join(".codex"))
        .join("config.toml")
}

/// `[mcp_servers.iapeer]` merged into a Codex config, formatting kept.
fn codex_merge(existing: &str, url: &str, bearer: bool) -> anyhow::Result<String> {
    use toml_edit::{DocumentMut, InlineTable, Item, Table, value};
    let mut doc: DocumentMut = existing
        .parse()
        .context("the Codex config is not valid TOML; not touching it")?;
    let servers = doc
        .entry("mcp_servers")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .context("mcp_servers is not a table")?;
    let mut server = Table::new();
    server.insert("url", value(url));
    let mut headers = InlineTable::new();
    headers.insert("X-IAPeer-Identity", "PEER_IDENTITY".into());
    server.insert("env_http_headers", value(headers));
    if bearer {
        server.insert("bearer_token_env_var", value("IAPEER_BEARER_TOKEN"));
    }
    server.insert("tool_timeout_sec", value(TOOL_TIMEOUT_SECS as i64));
    servers.insert(SERVER, Item::Table(server));
    Ok(doc.to_string())
}

fn codex(cfg: &Config, url: &str, bearer: bool, write: bool) -> anyhow::Result<i32> {
    let path = codex_config_path(cfg);
    let existing = match fsutil::read_regular_text(&path, 16 << 20) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !write {
        crate::outln!("# {}", path.display());
        crate::term::out_raw(codex_merge("", url, bearer)?.as_bytes());
        crate::errln!(
            "# one user-level entry serves every peer: the header comes from each session's PEER_IDENTITY"
        );
        return Ok(0);
    }
    let merged = codex_merge(&existing, url, bearer)?;
    report(
        &path,
        write_if_changed(&path, &merged)?,
        "mcp_servers.iapeer",
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_merge_keeps_the_rest_and_is_idempotent() {
        let existing = "# mine\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"x\"\n";
        let once = codex_merge(existing, "http://127.0.0.1:8765/mcp", false).unwrap();
        assert!(once.starts_with("# mine\nmodel = \"o3\"\n"), "{once}");
        assert!(
            once.contains("[mcp_servers.other]\ncommand = \"x\""),
            "{once}"
        );
        assert!(
            once.contains("[mcp_servers.iapeer]\nurl = \"http://127.0.0.1:8765/mcp\"\nenv_http_headers = { X-IAPeer-Identity = \"PEER_IDENTITY\" }\ntool_timeout_sec = 600\n"),
            "{once}"
        );
        assert!(!once.contains("bearer_token_env_var"));
        assert_eq!(
            codex_merge(&once, "http://127.0.0.1:8765/mcp", false).unwrap(),
            once
        );
        let with_bearer = codex_merge(&once, "http://127.0.0.1:9/mcp", true).unwrap();
        assert!(with_bearer.contains("bearer_token_env_var = \"IAPEER_BEARER_TOKEN\""));
        assert!(with_bearer.contains("url = \"http://127.0.0.1:9/mcp\""));
        assert_eq!(with_bearer.matches("[mcp_servers.iapeer]").count(), 1);
    }

    #[test]
    fn trusting_a_folder_keeps_the_rest_of_claudes_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".claude.json");
        std::fs::write(
            &state,
            r#"{"hasCompletedOnboarding":true,"projects":{"/a":{"allowedTools":["x"]}}}"#,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(trust_folder(&state, Path::new("/a")).unwrap());
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "the file keeps its mode");
        assert!(
            !trust_folder(&state, Path::new("/a")).unwrap(),
            "idempotent"
        );
        assert!(trust_folder(&state, Path::new("/b")).unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert_eq!(v["hasCompletedOnboarding"], true);
        assert_eq!(v["projects"]["/a"]["allowedTools"][0], "x");
        assert_eq!(v["projects"]["/a"]["hasTrustDialogAccepted"], true);
        assert_eq!(v["projects"]["/b"]["hasTrustDialogAccepted"], true);
        std::fs::write(&state, "{not json").unwrap();
        assert!(trust_folder(&state, Path::new("/a")).is_err());
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "{not json");
    }

    #[test]
    fn claude_entry_takes_the_identity_from_the_environment() {
        let e = claude_entry("http://127.0.0.1:8765/mcp", true);
        assert_eq!(e["type"], "http");
        assert_eq!(e["headers"]["X-IAPeer-Identity"], "${PEER_IDENTITY}");
        assert_eq!(
            e["headers"]["Authorization"],
            "Bearer ${IAPEER_BEARER_TOKEN}"
        );
        assert!(
            claude_entry("u", false)["headers"]
                .get("Authorization")
                .is_none()
        );
    }
}
