//! The two listeners and their accept loops: a Unix socket (0600 in a 0700
//! dir, the peer's uid checked with `SO_PEERCRED`) and loopback TCP. Each
//! connection is served by hyper (HTTP/1.1) with a header-read timeout, so
//! a client that connects and never sends costs one idle task for a few
//! seconds and nothing else.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::tcp_owner::{Lookup, owner_uid};
use crate::fsutil;

/// A client has this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

pub(crate) struct Bound {
    pub unix: UnixListener,
    pub sock: PathBuf,
    pub tcp: Option<TcpListener>,
}

/// Binds the Unix socket (replacing a stale file, never a live daemon's)
/// and, when `port` is given, `127.0.0.1:<port>` (0 picks a free port).
pub(crate) fn bind(sock: &Path, port: Option<u16>) -> anyhow::Result<Bound> {
    let dir = sock
        .parent()
        .context("the daemon socket path has no directory")?;
    fsutil::ensure_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(fsutil::DIR_MODE))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    match std::fs::symlink_metadata(sock) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                bail!("a daemon is already listening on {}", sock.display());
            }
            fsutil::remove_if_exists(sock)?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; not replacing it",
            sock.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", sock.display())),
    }
    let std_unix = std::os::unix::net::UnixListener::bind(sock)
        .with_context(|| format!("cannot listen on {}", sock.display()))?;
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(fsutil::FILE_MODE))?;
    std_unix.set_nonblocking(true)?;
    let unix = UnixListener::from_std(std_unix)?;
    let tcp = match port {
        None => None,
        Some(port) => {
            let std_tcp = std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
            std_tcp.set_nonblocking(true)?;
            Some(TcpListener::from_std(std_tcp)?)
        }
    };
    Ok(Bound {
        unix,
        sock: sock.to_path_buf(),
        tcp,
    })
}

/// One HTTP/1.1 connection: headers within [`HEADER_READ_TIMEOUT`], and
/// cut once the client has read nothing for `write_stall`.
fn http_connection<S>(
    stream: S,
    app: Router,
    write_stall: Duration,
) -> hyper::server::conn::http1::Connection<
    TokioIo<super::stall::WriteStallLimit<S>>,
    TowerToHyperService<Router>,
>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(
            TokioIo::new(super::stall::WriteStallLimit::new(stream, write_stall)),
            TowerToHyperService::new(app),
        )
}

fn serve_connection<S>(
    stream: S,
    app: &Router,
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
    write_stall: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = graceful.watch(http_connection(stream, app.clone(), write_stall));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("connection ended: {e}");
        }
        drop(slot);
    });
}

/// Waits for a free connection slot (or `stop`).
async fn slot(slots: &Arc<Semaphore>, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        _ = stop.cancelled() => None,
        permit = slots.clone().acquire_owned() => permit.ok(),
    }
}

/// Accepts on the Unix socket until `stop`, then lets open connections
/// finish their requests.
pub(crate) async fn serve_unix(
    listener: UnixListener,
    app: Router,
    stop: CancellationToken,
    write_stall: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    loop {
        let Some(permit) = slot(&slots, &stop).await else {
            break;
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accept on the daemon socket failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {
                serve_connection(stream, &app, &graceful, permit, write_stall)
            }
            Ok(cred) => {
                tracing::warn!(uid = cred.uid(), "refused a connection from another user");
            }
            Err(e) => tracing::warn!("refused a connection without credentials: {e}"),
        }
    }
    graceful.shutdown().await;
}

/// Is this TCP connection from a process of this user? On Linux the
/// kernel says, for this one socket (see `tcp_owner`); elsewhere it cannot
/// be told, and the bearer token (or `--no-tcp`) is the gate.
#[cfg(target_os = "linux")]
async fn is_mine(stream: &tokio::net::TcpStream, how: Lookup) -> Result<(), String> {
    let (Ok(ours), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
        return Err("its addresses cannot be read".into());
    };
    let owner = match how {
        // One netlink round trip: cheaper than a hop to the blocking pool.
        Lookup::Netlink => owner_uid(ours, peer, how),
        // The table read can be megabytes: off the async workers, and one
        // at a time (the accept loop awaits it).
        Lookup::SocketTable => tokio::task::spawn_blocking(move || owner_uid(ours, peer, how))
            .await
            .map_err(|e| format!("the owner check failed: {e}"))?,
    };
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    match owner {
        Ok(uid) if uid == me => Ok(()),
        Ok(uid) => Err(format!("uid {uid}")),
        Err(why) => Err(why.to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
async fn is_mine(_stream: &tokio::net::TcpStream, _how: Lookup) -> Result<(), String> {
    Ok(())
}

/// Accepts on loopback TCP until `stop`, then lets open connections
/// finish. On Linux a connection from another user's process is refused,
/// as on the Unix socket.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    write_stall: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let how = Lookup::available();
    let mut refused: u64 = 0;
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accept on TCP failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Checked here, one at a time and before anything is held: a flood
        // from another user costs one cheap check per connection and never
        // a slot, a task or a thread.
        if let Err(why) = is_mine(&stream, how).await {
            refused += 1;
            // Said at the first and then at every power of two: a flood
            // must not flood the log either.
            if refused.is_power_of_two() {
                tracing::warn!(
                    "refused a TCP connection from another user ({why}); {refused} so far"
                );
            }
            continue;
        }
        let Some(permit) = slot(&slots, &stop).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        serve_connection(stream, &app, &graceful, permit, write_stall);
    }
    graceful.shutdown().await;
}
