//! `iapeerd`: the long-running host. Loads the adapters; serves MCP and the
//! fleet API on a Unix socket and loopback TCP; runs the supervise tick
//! (reap gone and idle sessions, relaunch `/new` ones) every `--tick-secs`
//! and whenever a wake's heal pass finds a relaunch to do; reloads the
//! plugin dirs on SIGHUP; on SIGTERM/SIGINT stops accepting, lets in-flight
//! wakes and deliveries finish (bounded), removes its socket and
//! `router.json`, and exits 0. Sessions outlive it: the next daemon
//! supervises them. One daemon per root.

mod listen;
mod reload;
mod service;
mod stall;
#[cfg(target_os = "linux")]
mod tcp_owner;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use fs2::FileExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::discovery::Discovery;

use crate::api::{self, ApiState, DaemonInfo, Listener, TickSummary};
use crate::app::{GlobalArgs, finish};
use crate::clock::{Clock, SystemClock, iso8601_utc};
use crate::config::Config;
use crate::fleet;
use crate::fleetlink::FleetLink;
use crate::fsutil;
use crate::lifecycle::{Handoff, Lifecycle, SuperviseAction};
use crate::names::Personality;
use crate::plugins::{PluginHost, PluginState};

#[derive(Debug, Parser)]
#[command(name = "iapeerd", version, about = "The iapeer plugin-host daemon")]
struct IapeerdCli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Seconds between supervise ticks.
    #[arg(long, default_value_t = 60, value_name = "N", value_parser = crate::config::parse_secs)]
    tick_secs: u64,
    /// Loopback TCP port for MCP and the fleet API (default: $IAPEER_PORT,
    /// else 8765; 0 picks a free one).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Serve only the Unix socket.
    #[arg(long)]
    no_tcp: bool,
    /// Longest wait on shutdown for in-flight wakes and deliveries.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = crate::config::parse_secs)]
    shutdown_grace_secs: u64,
    /// Seconds between heartbeat comments on the event stream.
    #[arg(long, default_value_t = 15, value_name = "N", value_parser = crate::config::parse_secs, hide = true)]
    heartbeat_secs: u64,
    /// Seconds a client may read nothing while an answer waits for it
    /// before its connection is cut.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = crate::config::parse_secs, hide = true)]
    write_stall_secs: u64,
    #[command(flatten)]
    fleet: crate::fleet::FleetArgs,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum DaemonCommand {
    /// Run iapeerd under the user's service manager (a systemd user unit; a
    /// launchd agent on macOS). Idempotent; prints how to enable it.
    InstallService {
        /// Print the file instead of writing it.
        #[arg(long)]
        print: bool,
    },
}

async fn load_plugins(cfg: &Config) -> anyhow::Result<Arc<PluginHost>> {
    let host = PluginHost::load(&cfg.plugin_options())
        .await
        .map_err(anyhow::Error::msg)?;
    for r in host.reports() {
        let runtime = r.runtime.as_deref().unwrap_or("-");
        match r.state {
            PluginState::Loaded => tracing::info!(runtime, source = %r.source, "adapter loaded"),
            _ => tracing::warn!(
                runtime,
                source = %r.source,
                state = %r.state,
                reason = r.reason.as_deref().unwrap_or(""),
                "adapter not loaded"
            ),
        }
    }
    Ok(Arc::new(host))
}

/// `adapters=claude,codex not_loaded=1`, for the daemon's stderr.
fn summary(host: &PluginHost) -> String {
    let runtimes: Vec<&str> = host.runtimes().collect();
    let not_loaded = host
        .reports()
        .iter()
        .filter(|r| r.state != PluginState::Loaded)
        .count();
    format!("adapters={} not_loaded={not_loaded}", runtimes.join(","))
}

fn new_lifecycle(
    cfg: &Config,
    plugins: Arc<PluginHost>,
    hands: &Handoff,
    shutdown: &CancellationToken,
) -> Arc<Lifecycle> {
    Arc::new(
        Lifecycle::new(cfg.clone(), plugins, Arc::new(SystemClock))
            .with_handoff(hands.clone())
            .with_shutdown(shutdown.clone())
            .with_shim(crate::shim::current()),
    )
}

/// One supervise pass plus the eager relaunches it asks for (skipped when
/// a pass is already running).
async fn supervise(state: Arc<ApiState>) {
    let lc = state.lifecycle();
    let started = Instant::now();
    let Some(outcomes) = lc.try_supervise_tick().await else {
        return;
    };
    let mut actions = std::collections::BTreeMap::new();
    for o in &outcomes {
        *actions.entry(o.action.to_string()).or_insert(0) += 1;
        if o.action != SuperviseAction::Alive {
            tracing::info!(
                identity = %o.identity,
                action = %o.action,
                reason = o.reason.as_deref().unwrap_or(""),
                "supervise"
            );
        }
    }
    let relaunches = lc.process_eager_relaunches(&outcomes).await;
    for r in &relaunches {
        match r {
            Ok(w) => tracing::info!(identity = %w.identity, "eager fresh relaunch READY"),
            Err(e) => tracing::warn!("eager fresh relaunch failed; the /new mark stays: {e}"),
        }
    }
    let relaunched = relaunches.iter().filter(|r| r.is_ok()).count();
    state.record_tick(TickSummary {
        at: iso8601_utc(SystemClock.now_ms()),
        ms: started.elapsed().as_millis() as u64,
        actions,
        relaunched,
        relaunch_failed: relaunches.len() - relaunched,
    });
}

/// How often the daemon looks at the mailbox for mail due another try.
const MAIL_PASS: Duration = Duration::from_millis(100);

/// Dead-letters expired mail and starts a drain for each peer whose mail
/// is due (a peer already draining is not started twice).
fn mail_pass(state: &Arc<ApiState>) {
    // Off the main loop: a mailbox held by another process must not stall
    // signals and ticks. One pass at a time.
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if RUNNING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let state = state.clone();
    state.tasks.clone().spawn(async move {
        let lc = state.lifecycle();
        let pass = {
            let lc = lc.clone();
            tokio::task::spawn_blocking(move || crate::delivery::mail_pass(&lc)).await
        };
        RUNNING.store(false, std::sync::atomic::Ordering::Release);
        let due = match pass {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => return tracing::warn!("mailbox pass: {e}"),
            Err(e) => return tracing::warn!("mailbox pass panicked: {e}"),
        };
        for p in due {
            spawn_drain(&state, p);
        }
    });
}

/// Drains the mailbox of each peer handed over by a send that did not
/// wait for its delivery (a peer already draining is not started twice).
async fn deliverer(
    state: Arc<ApiState>,
    mut handed: tokio::sync::mpsc::UnboundedReceiver<Personality>,
    shutdown: CancellationToken,
) {
    loop {
        let p = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = handed.recv() => match p { Some(p) => p, None => return },
        };
        spawn_drain(&state, p);
    }
}

fn spawn_drain(state: &Arc<ApiState>, p: Personality) {
    let lc = state.lifecycle();
    state.tasks.spawn(async move {
        if let Err(e) = crate::delivery::drain_watching(&lc, &p).await {
            tracing::warn!(peer = %p, "mailbox drain: {e}");
        }
    });
}

/// Joins the fleet in the background, trying again until its server
/// answers: meanwhile the host serves its own peers as without a fleet.
fn join_fleet(state: &Arc<ApiState>, settings: fleet::Settings, shutdown: &CancellationToken) {
    let link = Arc::new(FleetLink::new(settings.host.clone()));
    state.lifecycle().join_fleet(link.clone());
    let router = api::router(state.clone(), Listener::Unix);
    let token = state.lifecycle().cfg.bearer_token.clone();
    let answer: fleet::ctl::Answerer =
        Arc::new(move |req| Box::pin(api::answer_carried(router.clone(), token.clone(), req)));
    let current: fleet::Current = {
        let state = state.clone();
        Arc::new(move || state.lifecycle())
    };
    let (state, shutdown) = (state.clone(), shutdown.clone());
    state.tasks.clone().spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            let joined = fleet::join(
                &settings,
                current.clone(),
                link.clone(),
                answer.clone(),
                &state.tasks,
                shutdown.clone(),
            );
            let joined = tokio::select! {
                _ = shutdown.cancelled() => return,
                j = joined => j,
            };
            match joined {
                Ok(f) => {
                    let _ = state.fleet.set(f);
                    crate::errln!(
                        "[iapeerd] JOINED fleet={} host={}",
                        settings.url,
                        settings.host
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot join the fleet yet (again in {pause:?}): {e:#}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
}

/// How long a start waits for the daemon lock: a predecessor killed a
/// moment ago still holds it until the kernel has torn it down.
const PREDECESSOR_EXIT_PATIENCE: Duration = Duration::from_secs(3);

/// Takes the exclusive lock, trying again for at most `patience`.
async fn lock_within(lock: &std::fs::File, patience: Duration) -> bool {
    let mut poll = crate::poll::Poll::new(
        patience,
        Duration::from_millis(10),
        Duration::from_millis(100),
    );
    loop {
        if lock.try_lock_exclusive().is_ok() {
            return true;
        }
        if !poll.pause().await {
            return false;
        }
    }
}

async fn run(cfg: Config, cli: IapeerdCli) -> anyhow::Result<i32> {
    cfg.check_private_dirs()?;
    // One daemon per root.
    let state_dir = cfg.root.join("state/iapeer");
    fsutil::ensure_private_dir(&state_dir).context("cannot create the daemon state dir")?;
    let lock = fsutil::open_lock_file(&state_dir.join("iapeerd.lock"))?;
    if !lock_within(&lock, PREDECESSOR_EXIT_PATIENCE).await {
        anyhow::bail!(
            "another iapeerd is already running on {}",
            cfg.root.display()
        );
    }

    let plugins = load_plugins(&cfg).await?;
    let plugin_summary = summary(&plugins);
    let kick = Arc::new(Notify::new());
    let (mail_tx, mail_rx) = tokio::sync::mpsc::unbounded_channel();
    let hands = Handoff::Kick {
        supervise: kick.clone(),
        mail: mail_tx,
    };
    let bound = listen::bind(
        &cfg.daemon_socket,
        (!cli.no_tcp).then_some(cli.port.unwrap_or(cfg.port)),
    )?;
    let tcp_url = match &bound.tcp {
        Some(l) => Some(format!("http://{}/mcp", l.local_addr()?)),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let state = Arc::new(ApiState::new(
        new_lifecycle(&cfg, plugins, &hands, &shutdown),
        DaemonInfo {
            pid: std::process::id(),
            started: Instant::now(),
            started_ms: SystemClock.now_ms(),
            sock: bound.sock.clone(),
            tcp: tcp_url.clone(),
            tick_secs: cli.tick_secs,
            heartbeat: Duration::from_secs(cli.heartbeat_secs),
            last_tick: Default::default(),
        },
        shutdown.clone(),
    ));

    if cfg.operator.is_some()
        && let Err(problem) = api::operator_sender(&state.lifecycle())
    {
        tracing::warn!("{problem}: the dashboard cannot send until it is fixed");
    }
    if let Some(settings) = cli.fleet.settings(&cfg.env)? {
        join_fleet(&state, settings, &shutdown);
    }
    let reloader = reload::spawn(cfg.clone(), state.clone(), hands, shutdown.clone());
    state
        .tasks
        .spawn(deliverer(state.clone(), mail_rx, shutdown.clone()));
    state.set_reloader(reloader.clone());
    let _watcher = reload::watch(&cfg.plugin_dirs, reloader.clone());

    let mut servers = vec![tokio::spawn(listen::serve_unix(
        bound.unix,
        api::router(state.clone(), Listener::Unix),
        shutdown.clone(),
        Duration::from_secs(cli.write_stall_secs),
    ))];
    if let Some(tcp) = bound.tcp {
        servers.push(tokio::spawn(listen::serve_tcp(
            tcp,
            api::router(state.clone(), Listener::Tcp),
            shutdown.clone(),
            Duration::from_secs(cli.write_stall_secs),
        )));
    }
    let discovery_file = crate::discovery::write(
        &cfg,
        &Discovery {
            sock: Some(bound.sock.clone()),
            tcp: tcp_url.clone(),
            fleet: 1,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
        },
    )
    .context("cannot write router.json")?;
    crate::errln!(
        "[iapeerd] READY root={} tick={}s {plugin_summary} tcp={} sock={} dashboard={}",
        cfg.root.display(),
        cli.tick_secs,
        tcp_url.as_deref().unwrap_or("off"),
        bound.sock.display(),
        tcp_url.as_deref().map_or("off".into(), |mcp| format!(
            "{}/",
            mcp.trim_end_matches("/mcp")
        )),
    );

    let mut mail = tokio::time::interval(MAIL_PASS);
    mail.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut interval = tokio::time::interval(Duration::from_secs(cli.tick_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = hup.recv() => reloader.request(crate::api::reload::Trigger::Operator),
            _ = interval.tick() => {
                state.tasks.spawn(supervise(state.clone()));
            }
            _ = kick.notified() => {
                state.tasks.spawn(supervise(state.clone()));
            }
            _ = mail.tick() => mail_pass(&state),
        }
    }

    crate::errln!("[iapeerd] stopping: no new connections; waiting for in-flight work");
    shutdown.cancel();
    state.tasks.close();
    let grace = Duration::from_secs(cli.shutdown_grace_secs);
    let drained = tokio::time::timeout(grace, async {
        futures::future::join_all(servers).await;
        state.tasks.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight work outlasted {grace:?}; stopping anyway (its sessions stay recorded and supervised)"
        );
    }
    crate::discovery::remove(&discovery_file);
    let _ = fsutil::remove_if_exists(&state.info.sock);
    crate::errln!("[iapeerd] stopped");
    drop(lock);
    Ok(0)
}

/// Entry point of the `iapeerd` binary.
pub fn iapeerd_main() -> ExitCode {
    if let Some(code) = crate::shim::dispatch().or_else(crate::panelog::dispatch) {
        return code;
    }
    let cli: IapeerdCli = match crate::app::parse_args("iapeerd") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let cfg = match cli.global.config() {
        Ok(cfg) => cfg,
        Err(e) => {
            crate::errln!("iapeerd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(DaemonCommand::InstallService { print }) = cli.command {
        return finish(
            "iapeerd",
            service::install(&cfg, cli.shutdown_grace_secs, print),
        );
    }
    cli.global.init_logging(
        "info,rmcp=warn",
        Some(crate::logfile::RotatingWriter {
            path: cfg.log_dir.join("iapeerd.log"),
            rotation: cfg.daemon_log,
        }),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return finish("iapeerd", Err(e.into())),
    };
    finish("iapeerd", runtime.block_on(run(cfg, cli)))
}
