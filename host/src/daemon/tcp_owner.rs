//! Who is on the other end of a loopback TCP connection? The kernel's
//! socket diagnostics (`NETLINK_SOCK_DIAG`) answer for one exact socket:
//! the client's end of `peer → ours`, looked up by its address pair, with
//! its owner's uid. One request, one reply, whatever the size of the
//! socket table — another user who fills the table with sockets of its own
//! cannot make the check cost more. Only an established socket with a live
//! inode speaks for a process (a client that closed already leaves an
//! orphan or a TIME_WAIT entry that claims uid 0).
//!
//! Where netlink is refused when the listener starts (a seccomp filter, an
//! old kernel), the socket table in `/proc/net/tcp` is read line by line
//! instead and the read stops at the match: memory stays at one line,
//! never the whole table.

use std::io::{BufRead, BufReader, Read};
use std::mem::size_of;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `tcp_states.h`: `TCP_ESTABLISHED`.
const ESTABLISHED: u8 = 1;
/// `sock_diag.h`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `inet_diag.h`: match any cookie.
const NO_COOKIE: u32 = !0;
/// Longest `/proc/net/tcp` line believed (real ones are ~150 bytes).
const MAX_PROC_LINE: u64 = 512;

/// Why the owner of a connection is not known: the connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// No live established socket is that client's end (it closed, or it
    /// is not on this host's loopback).
    NoLiveOwner,
    /// The kernel could not be asked.
    Unreadable(String),
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::NoLiveOwner => f.write_str("no live owner"),
            Unknown::Unreadable(why) => f.write_str(why),
        }
    }
}

/// How the owner is looked up: decided once, when the listener starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// One netlink request for the one socket (microseconds).
    Netlink,
    /// `/proc/net/tcp`, read to the match (slow on a big table).
    SocketTable,
}

impl Lookup {
    /// Netlink when this kernel and sandbox allow it (elsewhere than
    /// Linux the owner cannot be told at all; see `listen`).
    pub(crate) fn available() -> Lookup {
        if cfg!(target_os = "linux") && diag_socket().is_ok() {
            Lookup::Netlink
        } else {
            Lookup::SocketTable
        }
    }
}

/// The uid owning the client end of `peer → ours`. A netlink failure is
/// a refusal, never a fall back to the slow table read mid-flood.
pub(crate) fn owner_uid(ours: SocketAddr, peer: SocketAddr, how: Lookup) -> Result<u32, Unknown> {
    let (SocketAddr::V4(ours), SocketAddr::V4(peer)) = (ours, peer) else {
        return Err(Unknown::Unreadable("not an IPv4 connection".into()));
    };
    let found = match how {
        Lookup::Netlink => diag_owner(ours, peer).map_err(|e| format!("sock_diag: {e}")),
        Lookup::SocketTable => proc_owner(ours, peer).map_err(|e| format!("/proc/net/tcp: {e}")),
    };
    found
        .map_err(Unknown::Unreadable)?
        .ok_or(Unknown::NoLiveOwner)
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct inet_diag_sockid`: ports and addresses in network order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DiagRequest {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// `struct inet_diag_msg`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

fn diag_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A kernel that does not answer within this long is treated as refusing.
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: a valid fd and a timeval of the right size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

/// Asks the kernel for the one socket whose local end is `peer` and remote
/// end `ours`. `Ok(None)`: there is none that is established and live.
fn diag_owner(ours: SocketAddrV4, peer: SocketAddrV4) -> std::io::Result<Option<u32>> {
    #[repr(C)]
    struct Request {
        header: NlMsgHdr,
        body: DiagRequest,
    }
    let fd = diag_socket()?;
    let mut id = SockId {
        sport: peer.port().to_be_bytes(),
        dport: ours.port().to_be_bytes(),
        cookie: [NO_COOKIE; 2],
        ..SockId::default()
    };
    id.src[..4].copy_from_slice(&peer.ip().octets());
    id.dst[..4].copy_from_slice(&ours.ip().octets());
    let request = Request {
        header: NlMsgHdr {
            len: size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            // Not a dump: the kernel looks up exactly this socket.
            flags: libc::NLM_F_REQUEST as u16,
            seq: 1,
            pid: 0,
        },
        body: DiagRequest {
            family: libc::AF_INET as u8,
            protocol: libc::IPPROTO_TCP as u8,
            states: !0,
            id,
            ..DiagRequest::default()
        },
    };
    // SAFETY: the request is plain old data of the stated length.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&raw const request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut reply = [0u8; 512];
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: the buffer and the address are writable for their lengths.
    let got = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
            (&raw mut from).cast(),
            &raw mut from_len,
        )
    };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Only the kernel (port 0) answers for sockets.
    if from.nl_pid != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a netlink reply that is not the kernel's",
        ));
    }
    parse_reply(&reply[..got as usize])
}

/// Reads a plain-old-data struct at `at`, if the bytes are there.
fn read_at<T: Copy + Default>(bytes: &[u8], at: usize) -> Option<T> {
    let end = at.checked_add(size_of::<T>())?;
    let slice = bytes.get(at..end)?;
    let mut value = T::default();
    // SAFETY: T is a repr(C) struct of integers (any bit pattern is
    // valid) and the slice holds exactly size_of::<T>() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(slice.as_ptr(), (&raw mut value).cast(), size_of::<T>());
    }
    Some(value)
}

fn parse_reply(reply: &[u8]) -> std::io::Result<Option<u32>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let header: NlMsgHdr = read_at(reply, 0).ok_or_else(|| bad("short netlink reply"))?;
    match header.kind {
        SOCK_DIAG_BY_FAMILY => {
            let msg: DiagMsg = read_at(reply, size_of::<NlMsgHdr>())
                .ok_or_else(|| bad("short sock_diag reply"))?;
            let live = msg.state == ESTABLISHED && msg.inode != 0;
            Ok(live.then_some(msg.uid))
        }
        kind if kind == libc::NLMSG_ERROR as u16 => {
            let errno: i32 =
                read_at(reply, size_of::<NlMsgHdr>()).ok_or_else(|| bad("short netlink error"))?;
            match -errno {
                // No such socket.
                libc::ENOENT => Ok(None),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        }
        other => Err(bad(&format!("unexpected netlink message type {other}"))),
    }
}

/// The fallback: `/proc/net/tcp`, one bounded line at a time.
fn proc_owner(ours: SocketAddrV4, peer: SocketAddrV4) -> Result<Option<u32>, String> {
    let file = std::fs::File::open("/proc/net/tcp").map_err(|e| format!("cannot read: {e}"))?;
    find_owner(BufReader::new(file), ours, peer).map_err(|e| format!("cannot read: {e}"))
}

/// `ADDR:PORT` as `/proc/net/tcp` prints an IPv4 socket address: the
/// address as the host-order hex of its network-order bytes, the port in hex.
fn proc_net_addr(a: SocketAddrV4) -> String {
    format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(a.ip().octets()),
        a.port()
    )
}

fn find_owner(
    table: impl BufRead,
    ours: SocketAddrV4,
    peer: SocketAddrV4,
) -> std::io::Result<Option<u32>> {
    let (ours, peer) = (proc_net_addr(ours), proc_net_addr(peer));
    let mut lines = table;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        let read = (&mut lines).take(MAX_PROC_LINE).read_line(&mut line)?;
        if read == 0 {
            return Ok(None);
        }
        if !line.ends_with('\n') && read as u64 == MAX_PROC_LINE {
            // Not a line of the table's format; skip the rest of it.
            let mut rest = Vec::new();
            lines.read_until(b'\n', &mut rest)?;
            continue;
        }
        if std::mem::take(&mut first) {
            continue;
        }
        // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode …
        let f: Vec<&str> = line.split_whitespace().collect();
        let live = f.len() > 9 && f[3] == "01" && f[9] != "0";
        if live && f[1] == peer && f[2] == ours {
            return Ok(f[7].parse().ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2231 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:2231 01 00000000:00000000 00:00000000 00000000  1000        0 22 1 0 20 4 30 10 -1\n\
   2: 0100007F:2231 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 33 1 0 20 4 30 10 -1\n\
   3: 0100007F:C351 0100007F:2231 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n\
   4: 0100007F:C352 0100007F:2231 06 00000000:00000000 00:00000000 00000000     0        0 44 1 0 20 4 30 10 -1\n";

    fn v4(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new([127, 0, 0, 1].into(), port)
    }

    #[test]
    fn owners_from_the_socket_table() {
        if cfg!(target_endian = "big") {
            return;
        }
        let find = |ours, peer| find_owner(TABLE.as_bytes(), ours, peer).unwrap();
        let ours = v4(8753);
        assert_eq!(find(ours, v4(50000)), Some(1000));
        assert_eq!(find(v4(50000), ours), Some(0));
        assert_eq!(find(ours, v4(50003)), None, "no line");
        // A closed client's orphan (inode 0) and a TIME_WAIT entry claim
        // uid 0: neither is believed.
        assert_eq!(find(ours, v4(50001)), None);
        assert_eq!(find(ours, v4(50002)), None);
        // An endless line is skipped, not held; the table after it reads.
        let junk = format!("{}\n{}", "x".repeat(100_000), TABLE);
        assert_eq!(
            find_owner(junk.as_bytes(), ours, v4(50000)).unwrap(),
            Some(1000)
        );
    }

    #[tokio::test]
    async fn a_real_loopback_connection_is_mine() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        // SAFETY: geteuid has no failure mode.
        let me = unsafe { libc::geteuid() };
        let peer = server_side.peer_addr().unwrap();
        assert_eq!(owner_uid(addr, peer, Lookup::Netlink).unwrap(), me);
        assert_eq!(owner_uid(addr, peer, Lookup::SocketTable).unwrap(), me);
        assert_eq!(client.local_addr().unwrap(), peer);
        let (SocketAddr::V4(ours4), SocketAddr::V4(peer4)) = (addr, peer) else {
            unreachable!()
        };
        // Both ways of asking agree.
        assert_eq!(
            Lookup::available(),
            Lookup::Netlink,
            "sock_diag works on this kernel"
        );
        assert_eq!(diag_owner(ours4, peer4).unwrap(), Some(me));
        assert_eq!(proc_owner(ours4, peer4).unwrap(), Some(me));
        // Gone: no owner.
        drop(client);
        drop(server_side);
        let unknown = SocketAddrV4::new([127, 0, 0, 1].into(), 1);
        assert_eq!(diag_owner(ours4, unknown).unwrap(), None);
    }
}
