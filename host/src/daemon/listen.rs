//! The two listeners and their accept loops: a Unix socket (0600 in a 0700
//! dir, the peer's uid checked with `SO_PEERCRED`) and loopback TCP. Each
//! connection is served by hyper (HTTP/1.1) with a header-read timeout, so
//! a client that connects and never sends costs one idle task for a few
//! seconds and nothing else.

use std::io;
use std::net::SocketAddr;
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

fn serve_connection<S>(
    stream: S,
    app: &Router,
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
    let conn = graceful.watch(conn);
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
pub(crate) async fn serve_unix(listener: UnixListener, app: Router, stop: CancellationToken) {
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
            Ok(cred) if cred.uid() == me => serve_connection(stream, &app, &graceful, permit),
            Ok(cred) => {
                tracing::warn!(uid = cred.uid(), "refused a connection from another user");
            }
            Err(e) => tracing::warn!("refused a connection without credentials: {e}"),
        }
    }
    graceful.shutdown().await;
}

/// The uid owning the client end of a loopback TCP connection, from the
/// kernel's socket table (`/proc/net/tcp`): the line whose local address is
/// the peer's and whose remote address is ours. `Ok(None)` when no line
/// matches.
#[cfg(target_os = "linux")]
fn tcp_peer_uid(ours: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(find_tcp_owner(&table, ours, peer))
}

/// `ADDR:PORT` as `/proc/net/tcp` prints an IPv4 socket address: the
/// address as the host-order hex of its network-order bytes, the port in hex.
fn proc_net_addr(a: SocketAddr) -> Option<String> {
    match a {
        SocketAddr::V4(v4) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        )),
        SocketAddr::V6(_) => None,
    }
}

fn find_tcp_owner(table: &str, ours: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let (ours, peer) = (proc_net_addr(ours)?, proc_net_addr(peer)?);
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 7 && f[1] == peer && f[2] == ours)
            .then(|| f[7].parse().ok())
            .flatten()
    })
}

/// Is this loopback connection from a process of this user? On Linux the
/// kernel says; elsewhere it cannot be told (the bearer token is then the
/// gate, or `--no-tcp`).
fn tcp_peer_is_me(stream: &tokio::net::TcpStream, me: u32) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let (ours, peer) = (
            stream.local_addr().map_err(|e| e.to_string())?,
            stream.peer_addr().map_err(|e| e.to_string())?,
        );
        match tcp_peer_uid(ours, peer) {
            Ok(Some(uid)) if uid == me => Ok(()),
            Ok(Some(uid)) => Err(format!("uid {uid}")),
            Ok(None) => Err(format!("{peer}: owner not found")),
            Err(e) => Err(format!("cannot read /proc/net/tcp: {e}")),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, me);
        Ok(())
    }
}

/// Accepts on loopback TCP until `stop`, then lets open connections
/// finish. On Linux a connection from another user's process is refused,
/// as on the Unix socket.
pub(crate) async fn serve_tcp(listener: TcpListener, app: Router, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    loop {
        let Some(permit) = slot(&slots, &stop).await else {
            break;
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Err(who) = tcp_peer_is_me(&stream, me) {
                        tracing::warn!("refused a TCP connection from another user ({who})");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    serve_connection(stream, &app, &graceful, permit);
                }
                Err(e) => {
                    tracing::warn!("accept on TCP failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_owner() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2231 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:2231 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1\n\
   2: 0100007F:2231 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n";
        let ours: SocketAddr = "127.0.0.1:8753".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(find_tcp_owner(table, ours, peer), Some(1000));
            assert_eq!(find_tcp_owner(table, peer, ours), Some(0));
        }
        let other: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        assert_eq!(find_tcp_owner(table, ours, other), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_real_loopback_connection_is_mine() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let me = unsafe { libc::geteuid() };
        assert_eq!(tcp_peer_is_me(&server_side, me), Ok(()));
        assert!(tcp_peer_is_me(&server_side, me + 1).is_err());
    }
}
