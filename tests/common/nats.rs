//! A real `nats-server` with JetStream for the fleet tests, each host
//! signed in with its own nkey and held to the permissions `iapeer fleet
//! permissions` prints; and a TCP link per host that a test can cut (a
//! partition) and heal.
#![allow(dead_code)] // the fleet tests and the bench each take a part

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Daemon, Fleet, wait_until};

/// `nats-server` on PATH (Debian's package), or why not.
pub fn nats_server() -> Result<PathBuf, String> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|d| d.join("nats-server"))
            .find(|f| f.is_file())
    });
    found.ok_or_else(|| "nats-server is not installed (apt-get install nats-server)".into())
}

/// A host's sign-in: its name, its seed file and its server user.
pub struct HostKey {
    pub name: String,
    pub seed: PathBuf,
    pub user: serde_json::Value,
}

/// Makes `name`'s key and permissions with the real `iapeer fleet` verbs.
pub fn host_key(dir: &Path, name: &str) -> HostKey {
    let seed = dir.join(format!("{name}.nk"));
    let iapeer = env!("CARGO_BIN_EXE_iapeer");
    let out = Command::new(iapeer)
        .args(["fleet", "keygen", "--seed-file", seed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = Command::new(iapeer)
        .args(["fleet", "permissions", name, "--nkey", &public])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    HostKey {
        name: name.into(),
        seed,
        user: serde_json::from_slice(&out.stdout).unwrap(),
    }
}

/// A running server; killed when dropped.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    log: PathBuf,
    addr: String,
}

impl Nats {
    /// Starts a server on a free loopback port for `users`.
    pub fn start(dir: &Path, users: &[&HostKey]) -> Nats {
        Nats::start_with(dir, users, None, "127.0.0.1")
    }

    /// … listening on `addr` (the root end of a [`Netns`] link).
    pub fn start_at(dir: &Path, users: &[&HostKey], addr: &str) -> Nats {
        Nats::start_with(dir, users, None, addr)
    }

    /// … serving TLS only, with `tls`' certificate (see [`Tls::make`]).
    pub fn start_tls(dir: &Path, users: &[&HostKey], tls: &Tls) -> Nats {
        Nats::start_with(dir, users, Some(tls), "127.0.0.1")
    }

    fn start_with(dir: &Path, users: &[&HostKey], tls: Option<&Tls>, addr: &str) -> Nats {
        let conf = dir.join("nats.conf");
        let users: Vec<&serde_json::Value> = users.iter().map(|k| &k.user).collect();
        let mut config = serde_json::json!({
            "jetstream": { "store_dir": dir.join("js").to_str().unwrap() },
            "authorization": { "users": users },
        });
        if let Some(t) = tls {
            config["tls"] = serde_json::json!({
                "cert_file": t.cert.to_str().unwrap(),
                "key_file": t.key.to_str().unwrap(),
            });
        }
        std::fs::write(&conf, config.to_string()).unwrap();
        let mut n = Nats {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            log: dir.join("nats.log"),
            addr: addr.to_string(),
        };
        n.spawn(-1);
        n
    }

    fn spawn(&mut self, port: i32) {
        let _ = std::fs::remove_file(&self.log);
        let child = Command::new(nats_server().unwrap())
            .args(["-c", self.dir.join("nats.conf").to_str().unwrap()])
            .args(["-a", &self.addr, "-p", &port.to_string()])
            .args(["-l", self.log.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let mut found = 0;
        wait_until("nats-server to listen", Duration::from_secs(20), || {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if !log.contains("Server is ready") {
                return false;
            }
            found = log
                .lines()
                .find_map(|l| l.split("Listening for client connections on ").nth(1))
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            found != 0
        });
        self.port = found;
    }

    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.addr, self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server (its JetStream store stays) and starts it again on
    /// the same port.
    pub fn restart(&mut self, down_for: Duration) {
        self.kill();
        std::thread::sleep(down_for);
        let port = self.port;
        self.spawn(i32::from(port));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the server logged (permission violations among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A network namespace joined to this one by a veth link: a host in it
/// reaches the server only over that link, which a test takes down.
pub struct Netns {
    pub name: String,
    root_end: String,
    pub root_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Why a namespace cannot be made here, if it cannot (it needs root
    /// and iproute2).
    pub fn unavailable() -> Option<String> {
        let probe = format!("iapp{}", std::process::id() % 100_000);
        match ip(&["netns", "add", &probe]) {
            Ok(()) => {
                let _ = ip(&["netns", "del", &probe]);
                None
            }
            Err(e) => Some(format!("cannot make a network namespace ({e})")),
        }
    }

    pub fn new() -> Netns {
        let tag = std::process::id() % 100_000;
        let name = format!("iapn{tag}");
        let (root_end, ns_end) = (format!("iapr{tag}"), format!("iapv{tag}"));
        let net = 16 + tag % 200;
        let (root_ip, ns_ip) = (format!("10.77.{net}.1"), format!("10.77.{net}.2"));
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &root_end]);
        // Made before the setup, so that a failed setup is cleaned up.
        let ns = Netns {
            name,
            root_end,
            root_ip,
        };
        let (name, root_end, root_ip) = (&ns.name, &ns.root_end, &ns.root_ip);
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", name])?;
            ip(&[
                "link", "add", root_end, "type", "veth", "peer", "name", &ns_end,
            ])?;
            ip(&["link", "set", &ns_end, "netns", name])?;
            ip(&["addr", "add", &format!("{root_ip}/30"), "dev", root_end])?;
            ip(&["link", "set", root_end, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", name.as_str(), "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_end])?;
            inside(&["link", "set", &ns_end, "up"])?;
            inside(&["link", "set", "lo", "up"])
        };
        setup().unwrap();
        ns
    }

    /// `ip netns exec <name>`: the wrapper a host's daemon runs under.
    pub fn exec(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// The link taken down (a partition) …
    pub fn link_down(&self) {
        ip(&["link", "set", &self.root_end, "down"]).unwrap();
    }

    /// … and up again.
    pub fn link_up(&self) {
        ip(&["link", "set", &self.root_end, "up"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.root_end]);
    }
}

/// A CA and a server certificate for 127.0.0.1 it signed (openssl).
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn make(dir: &Path) -> Tls {
        let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=iapeer test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("san.ext"),
            "-out",
            &p("server.pem"),
        ]);
        Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// A host's link to the server, through a loopback relay a test can cut:
/// a cut closes every connection through it and refuses new ones until
/// healed, as a network partition does.
pub struct Link {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Bytes held, connections kept: a link that drops packets silently.
    stalled: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Link {
    pub fn to(upstream: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o, st) = (cut.clone(), open.clone(), stalled.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(inbound.try_clone().unwrap());
                    open.push(outbound.try_clone().unwrap());
                }
                pump(
                    inbound.try_clone().unwrap(),
                    outbound.try_clone().unwrap(),
                    st.clone(),
                );
                pump(outbound, inbound, st.clone());
            }
        });
        Link {
            port,
            cut,
            stalled,
            open,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Holds every byte, closing nothing, until healed.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, stalled: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    while stalled.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// One host of a test fleet: its own root, sockets and name.
pub struct Host {
    pub name: String,
    pub world: Fleet,
    pub key: HostKey,
    pub url: String,
    /// More `iapeerd` flags (`--fleet-ca FILE`).
    pub extra: Vec<String>,
    /// What the daemon runs under (`ip netns exec NS`), if anything.
    pub wrapper: Vec<String>,
    /// Serve loopback TCP too (the dashboard), not only the socket.
    pub tcp: bool,
    pub daemon: Option<Daemon>,
}

impl Host {
    pub fn new(name: &str, key: HostKey, url: String) -> Host {
        Host {
            name: name.into(),
            world: Fleet::new(),
            key,
            url,
            extra: Vec::new(),
            wrapper: Vec::new(),
            tcp: false,
            daemon: None,
        }
    }

    /// Starts this host's daemon (`--no-tcp`, in this host's fleet).
    pub fn spawn(&mut self) -> &Daemon {
        let mut args = if self.tcp { vec![] } else { vec!["--no-tcp"] };
        args.extend([
            "--fleet",
            &self.url,
            "--host-name",
            &self.name,
            "--fleet-nkey",
            self.key.seed.to_str().unwrap(),
        ]);
        args.extend(self.extra.iter().map(String::as_str));
        let wrapper: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        let d = self.world.start_daemon_under(&wrapper, &args);
        self.daemon = Some(d);
        self.daemon()
    }

    /// Starts this host's daemon and waits until it joined the fleet.
    pub fn start(&mut self) -> &Daemon {
        self.spawn();
        let d = self.daemon();
        wait_until(
            &format!("host {} to join the fleet", self.name),
            Duration::from_secs(30),
            || d.stderr().contains("JOINED"),
        );
        self.daemon()
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.terminate();
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(d) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-9", &d.pid().to_string()])
                .status();
            drop(d);
        }
    }

    /// The whole-fleet listing this host's daemon gives.
    pub fn fleet_list(&self) -> serde_json::Value {
        let out = self.world.run(&["--json", "list", "--fleet"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until this host sees `peer` owned by `owner`.
    pub fn wait_owner(&self, peer: &str, owner: &str) {
        wait_until(
            &format!("{} to see {peer} owned by {owner}", self.name),
            Duration::from_secs(20),
            || {
                let snap = self.daemon().get("/fleet/v1/snapshot?scope=fleet").json();
                snap["peers"].as_array().into_iter().flatten().any(|p| {
                    p["personality"] == peer && p["host"] == owner && p["host_down"].is_null()
                })
            },
        );
    }
}
