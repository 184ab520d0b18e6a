//! Who is on the other end of a loopback TCP connection? Linux's socket
//! table (`/proc/net/tcp`) lists every socket with its owner's uid: the
//! client's socket is the line whose local address is the peer's and whose
//! remote address is ours. Only an established socket with a live inode
//! speaks for a process (a client that closed already leaves an orphan
//! entry that claims uid 0).

use std::net::SocketAddr;

/// `tcp_states.h`: `TCP_ESTABLISHED`.
const ESTABLISHED: &str = "01";

/// The uid owning the client end of `peer → ours`, or why it is unknown.
pub(crate) fn owner_uid(ours: SocketAddr, peer: SocketAddr) -> Result<u32, String> {
    let table = std::fs::read_to_string("/proc/net/tcp")
        .map_err(|e| format!("cannot read /proc/net/tcp: {e}"))?;
    find_owner(&table, ours, peer).ok_or_else(|| format!("{peer}: no live owner"))
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

fn find_owner(table: &str, ours: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let (ours, peer) = (proc_net_addr(ours)?, proc_net_addr(peer)?);
    table.lines().skip(1).find_map(|line| {
        // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode …
        let f: Vec<&str> = line.split_whitespace().collect();
        let live = f.len() > 9 && f[3] == ESTABLISHED && f[9] != "0";
        (live && f[1] == peer && f[2] == ours)
            .then(|| f[7].parse().ok())
            .flatten()
    })
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

    #[test]
    fn owners_from_the_socket_table() {
        if cfg!(target_endian = "big") {
            return;
        }
        let ours: SocketAddr = "127.0.0.1:8753".parse().unwrap();
        let peer = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(find_owner(TABLE, ours, peer(50000)), Some(1000));
        assert_eq!(find_owner(TABLE, peer(50000), ours), Some(0));
        assert_eq!(find_owner(TABLE, ours, peer(50003)), None, "no line");
        // A closed client's orphan (inode 0) and a TIME_WAIT entry claim
        // uid 0: neither is believed.
        assert_eq!(find_owner(TABLE, ours, peer(50001)), None);
        assert_eq!(find_owner(TABLE, ours, peer(50002)), None);
    }

    #[tokio::test]
    async fn a_real_loopback_connection_is_mine() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let me = unsafe { libc::geteuid() };
        let uid = owner_uid(addr, server_side.peer_addr().unwrap()).unwrap();
        assert_eq!(uid, me);
        assert_eq!(
            client.local_addr().unwrap(),
            server_side.peer_addr().unwrap()
        );
    }
}
