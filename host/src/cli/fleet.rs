//! `iapeer fleet`: the fleet across hosts — its listing (asked of this
//! host's daemon, which asks the others), a host's NATS key, and the
//! server permissions that hold a host to speaking for its own peers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;

use super::Ctx;
use super::verbs::{block_on, print_json};
use crate::config::Config;
use crate::fleet::permissions::{self, Login};
use crate::names::HostName;

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every host of the fleet this host's daemon joined (up or down) and
    /// every peer, with its host (as `iapeer list --fleet`).
    List,
    /// Make this host's NATS user key: writes the seed to FILE (0600, never
    /// over an existing file) and prints the public key for the server's
    /// config (`iapeerd --fleet-nkey FILE` signs in with it).
    Keygen {
        #[arg(long, value_name = "FILE")]
        seed_file: PathBuf,
    },
    /// Print the nats-server `authorization` user of HOST (JSON, which the
    /// server's config takes): what it may publish and subscribe to.
    Permissions {
        host: String,
        /// The host signs in with this user nkey (`U…`, from `keygen`).
        #[arg(long, value_name = "KEY", conflicts_with_all = ["user", "password_file"])]
        nkey: Option<String>,
        /// … or with this user name and the password in --password-file.
        #[arg(long, requires = "password_file")]
        user: Option<String>,
        #[arg(long, value_name = "FILE", requires = "user")]
        password_file: Option<PathBuf>,
    },
}

impl FleetCommand {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        match self {
            FleetCommand::List => list(ctx.cfg, ctx.json),
            FleetCommand::Keygen { seed_file } => keygen(seed_file, ctx.json),
            FleetCommand::Permissions {
                host,
                nkey,
                user,
                password_file,
            } => {
                let host = HostName::new(host.as_str())?;
                let login = match (nkey, user, password_file) {
                    (Some(key), _, _) => {
                        if !(key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()) {
                            bail!(
                                "--nkey {key:?} is not a user public key (U…; `iapeer fleet keygen` makes one)"
                            );
                        }
                        Login::Nkey(key.clone())
                    }
                    (None, Some(user), Some(file)) => Login::Password {
                        user: user.clone(),
                        password: crate::fsutil::read_regular_text(file, 4096)
                            .with_context(|| format!("cannot read {}", file.display()))?
                            .trim()
                            .to_string(),
                    },
                    _ => bail!(
                        "say how the host signs in: --nkey KEY, or --user NAME --password-file FILE"
                    ),
                };
                print_json(&permissions::user_block(&host, &login))?;
                Ok(0)
            }
        }
    }
}

/// Writes a fresh user seed to `path` (0600, new file only); prints the
/// public key.
fn keygen(path: &std::path::Path, json: bool) -> anyhow::Result<i32> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pair = nkeys::KeyPair::new_user();
    let seed = pair.seed().context("cannot make a key")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(format!("{seed}\n").as_bytes())?;
    file.sync_all()?;
    if json {
        print_json(&serde_json::json!({ "public_key": pair.public_key(), "seed_file": path }))?;
    } else {
        crate::outln!("{}", pair.public_key());
    }
    Ok(0)
}

/// How long a verb carried to another host may take (a wake boots a
/// runtime there).
const VERB_WAIT: Duration = Duration::from_secs(300);

/// `wake`, `stop`, `start` or `new` of a peer not registered here, carried
/// by this host's daemon to the host that owns it; `None` when the peer
/// is registered here or no daemon answers (the verb runs here, as ever).
pub fn carry_verb(
    ctx: &Ctx,
    verb: &str,
    peer: &crate::names::Personality,
    runtime: Option<&crate::names::Runtime>,
    reset: bool,
) -> Option<anyhow::Result<i32>> {
    let cfg = ctx.cfg;
    let registry = crate::registry::read_registry(&cfg.registry_path()).ok()?;
    if registry.find(peer.as_str()).is_some() {
        return None;
    }
    let sock = crate::discovery::read(cfg)
        .and_then(|d| d.sock)
        .unwrap_or_else(|| cfg.daemon_socket.clone());
    let body = serde_json::json!({ "runtime": runtime.map(|r| r.as_str()), "reset": reset });
    let path = format!("/fleet/v1/peers/{peer}/{verb}");
    let answer = block_on(crate::client::post_body(
        &sock,
        &path,
        cfg.bearer_token.as_deref(),
        &body,
        VERB_WAIT,
    ))
    .ok()?;
    Some(match answer {
        Err(crate::client::ClientError::Connect(_)) => return None,
        Ok(v) => {
            if ctx.json {
                print_json(&v).map(|()| 0)
            } else {
                crate::outln!("{verb} {peer}: done by its host");
                Ok(0)
            }
        }
        Err(crate::client::ClientError::Status { body, .. }) => {
            let why = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            Err(anyhow::anyhow!("{peer}: {why}"))
        }
        Err(e) => Err(anyhow::anyhow!("{peer}: {e}")),
    })
}

/// How long the listing may take (each host is asked for a moment).
const LIST_WAIT: Duration = Duration::from_secs(10);

/// The whole fleet's listing, from this host's daemon.
pub fn list(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let sock = crate::discovery::read(cfg)
        .and_then(|d| d.sock)
        .unwrap_or_else(|| cfg.daemon_socket.clone());
    let answer = block_on(async {
        tokio::time::timeout(
            LIST_WAIT,
            crate::client::get_json(
                &sock,
                "/fleet/v1/snapshot?scope=fleet",
                cfg.bearer_token.as_deref(),
            ),
        )
        .await
    })?
    .map_err(|_| anyhow::anyhow!("the daemon did not answer within {LIST_WAIT:?}"))?
    .with_context(|| {
        format!(
            "no daemon answers on {} (the fleet is seen through it)",
            sock.display()
        )
    })?;
    if json {
        print_json(&serde_json::json!({ "hosts": answer["hosts"], "peers": answer["peers"] }))?;
        return Ok(0);
    }
    if answer["joined"] != Value::Bool(true) {
        bail!("this host's daemon has not joined a fleet (iapeerd --fleet nats://…)");
    }
    crate::out!("{}", render(&answer));
    Ok(0)
}

fn render(answer: &Value) -> String {
    let empty = Vec::new();
    let hosts = answer["hosts"].as_array().unwrap_or(&empty);
    let mut rows = vec![["HOST", "STATE", "HEARTBEAT"].map(String::from).to_vec()];
    for h in hosts {
        let state = match (
            h["up"].as_bool(),
            h["here"].as_bool(),
            h["problem"].as_str(),
        ) {
            (Some(true), Some(true), _) => "up (this host)".to_string(),
            (Some(true), _, Some(problem)) => format!("up, not answering: {problem}"),
            (Some(true), _, None) => "up".to_string(),
            _ => "DOWN".to_string(),
        };
        let beat = h["heartbeat_age_ms"]
            .as_u64()
            .map_or("-".to_string(), |ms| {
                format!("{:.1}s ago", ms as f64 / 1000.0)
            });
        rows.push(vec![text(&h["host"]), state, beat]);
    }
    let mut out = super::table::render(&rows);
    out.push('\n');
    let mut rows = vec![
        ["HOST", "PEER", "RUNTIMES", "QUEUED"]
            .map(String::from)
            .to_vec(),
    ];
    let mut peers: Vec<&Value> = answer["peers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .collect();
    peers.sort_by_key(|p| (text(&p["host"]), text(&p["personality"])));
    for p in peers {
        let runtimes = if p["host_down"] == Value::Bool(true) {
            "? (host down)".to_string()
        } else {
            p["runtimes"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|r| {
                    let glyph = match r["status"].as_str() {
                        Some("live") => '●',
                        Some("stopped") => '✕',
                        Some("asleep") => '○',
                        _ => '?',
                    };
                    format!("{glyph} {}", text(&r["runtime"]))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        rows.push(vec![
            text(&p["host"]),
            text(&p["personality"]),
            runtimes,
            p["queue_depth"]
                .as_u64()
                .map_or("-".into(), |d| d.to_string()),
        ]);
    }
    out.push_str(&super::table::render(&rows));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// A JSON string or number as text (`-` when missing); the table escapes
/// what a terminal would act on.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
