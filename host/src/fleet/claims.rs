//! Who owns which personality, and which hosts are up. A host writes only
//! keys that start with its own name (`<host>.<personality>` in the owners
//! bucket, `<host>` in the hosts bucket), which the server's permissions
//! can hold it to; every host watches both. A personality registered here
//! and already claimed by another host is not claimed here (the daemon's
//! log says so); two hosts that claimed at once both show, and the
//! personality is refused with both names until one lets go.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Current, Fleet};
use crate::fleetlink::Owner;
use crate::lifecycle::Lifecycle;
use crate::names::{HostName, Personality};

/// How often a host beats, and re-reads its registry for claims.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A host not heard from for this long is down (the bucket drops it).
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(16);

/// A host's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Which daemon beats: the machine and the root, so a restart beats on
    /// and another machine under the same name is turned away.
    pub instance: String,
    pub started_ms: u64,
    pub at_ms: u64,
    pub version: String,
    /// This host's registered peers.
    pub peers: usize,
}

/// A claim's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    at_ms: u64,
}

/// This daemon, as a heartbeat's `instance`.
fn instance(lc: &Lifecycle) -> String {
    use sha2::Digest;
    let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(machine.trim().as_bytes());
    h.update(lc.cfg.root.as_os_str().as_encoded_bytes());
    hex::encode(&h.finalize()[..8])
}

fn claim_key(host: &HostName, p: &Personality) -> String {
    format!("{host}.{p}")
}

/// `<host>.<personality>` read back, checked.
fn parse_key(key: &str) -> Option<(HostName, Personality)> {
    let (host, p) = key.split_once('.')?;
    Some((HostName::new(host).ok()?, Personality::new(p).ok()?))
}

/// Beats once (refusing a name another live daemon beats under), loads
/// the claims, claims this host's peers, then keeps all three up to date.
pub async fn start(
    fleet: &Arc<Fleet>,
    current: &Current,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let me = fleet.link.host().clone();
    let lc = current();
    let instance = instance(&lc);
    let now = lc.clock.now_ms();
    let beat = Heartbeat {
        instance,
        started_ms: now,
        at_ms: now,
        version: env!("CARGO_PKG_VERSION").into(),
        peers: 0,
    };
    // The name taken atomically: of two daemons started at once under one
    // name, one makes the key and the other finds it. A key of this daemon
    // (a restart within the TTL) is its own; any other is another live
    // daemon's (the bucket drops a heartbeat older than the TTL).
    let first = serde_json::to_vec(&beat)?;
    match fleet.hosts.create(me.as_str(), first.into()).await {
        Ok(_) => {}
        Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
            let theirs = fleet
                .hosts
                .entry(me.as_str())
                .await?
                .and_then(|e| serde_json::from_slice::<Heartbeat>(&e.value).ok());
            if let Some(theirs) = theirs.filter(|t| t.instance != beat.instance) {
                anyhow::bail!(
                    "the host name {me} is in use by another live iapeerd (heartbeat {} ms old): give this one another --host-name",
                    now.saturating_sub(theirs.at_ms)
                );
            }
        }
        Err(e) => return Err(e.into()),
    }
    let mut keys = fleet.owners.keys().await?;
    while let Some(key) = keys.next().await {
        if let Some((host, p)) = parse_key(&key?) {
            fleet.link.set_claim(&p, &host, true);
        }
    }
    beat_and_claim(fleet, &lc, beat.clone()).await;
    let watch = fleet.owners.watch_with_history(">").await?;
    tasks.spawn(follow(fleet.clone(), watch, shutdown.clone()));
    tasks.spawn(follow_beats(fleet.clone(), shutdown.clone()));
    tasks.spawn(keep_up(fleet.clone(), current.clone(), beat, shutdown));
    Ok(())
}

/// Applies every change of the owners bucket to the link.
async fn follow(
    fleet: Arc<Fleet>,
    mut watch: async_nats::jetstream::kv::Watch,
    shutdown: CancellationToken,
) {
    use async_nats::jetstream::kv::Operation;
    loop {
        let entry = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = watch.next() => e,
        };
        match entry {
            Some(Ok(e)) => {
                if let Some((host, p)) = parse_key(&e.key) {
                    fleet
                        .link
                        .set_claim(&p, &host, e.operation == Operation::Put);
                }
            }
            Some(Err(e)) => tracing::warn!("fleet: watching the owners: {e}"),
            None => {
                // The watch ended (the server went away for long): again.
                tokio::time::sleep(Duration::from_secs(1)).await;
                match fleet.owners.watch_with_history(">").await {
                    Ok(w) => watch = w,
                    Err(e) => tracing::warn!("fleet: watching the owners again: {e}"),
                }
            }
        }
    }
}

async fn keep_up(
    fleet: Arc<Fleet>,
    current: Current,
    beat: Heartbeat,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {
                beats += 1;
                beat_and_claim(&fleet, &current(), beat.clone()).await;
                if beats.is_multiple_of(VERIFY_EVERY) {
                    reclaim_lost(&fleet).await;
                }
            }
        }
    }
    // A clean stop: down at once, not after the TTL.
    let _ = fleet.hosts.delete(fleet.link.host().as_str()).await;
}

/// Every this many beats, this host's claims are read back from the
/// bucket (not from memory), and any gone is written again.
const VERIFY_EVERY: u64 = 6;

/// Writes again a claim of this host the bucket no longer holds (whatever
/// removed it, the watch may not have said).
async fn reclaim_lost(fleet: &Fleet) {
    let me = fleet.link.host();
    for (p, hosts) in fleet.link.claims() {
        if !hosts.contains(me) {
            continue;
        }
        let key = claim_key(me, &p);
        if let Ok(None) = fleet.owners.get(key.as_str()).await {
            let claim = serde_json::to_vec(&Claim { at_ms: 0 }).unwrap_or_default();
            match fleet.owners.put(key.as_str(), claim.into()).await {
                Ok(_) => {
                    tracing::warn!(peer = %p, "fleet: this host's claim was gone from the bucket; claimed again")
                }
                Err(e) => tracing::warn!(peer = %p, "fleet: cannot claim again: {e}"),
            }
        }
    }
}

/// One heartbeat, and the claims made to match the registry.
async fn beat_and_claim(fleet: &Fleet, lc: &Lifecycle, mut beat: Heartbeat) {
    let me = fleet.link.host();
    let local: BTreeSet<Personality> = match lc.registry() {
        Ok(r) => r.peers.iter().map(|p| p.personality.clone()).collect(),
        Err(e) => {
            tracing::warn!("fleet: cannot read the registry for claims: {e}");
            return;
        }
    };
    beat.at_ms = lc.clock.now_ms();
    beat.peers = local.len();
    if let Ok(value) = serde_json::to_vec(&beat)
        && let Err(e) = fleet.hosts.put(me.as_str(), value.into()).await
    {
        tracing::warn!("fleet: heartbeat: {e}");
    }
    let claim = serde_json::to_vec(&Claim { at_ms: beat.at_ms }).unwrap_or_default();
    for p in &local {
        match fleet.link.owner(p) {
            Owner::Here => {}
            Owner::Nobody => {
                match fleet
                    .owners
                    .put(claim_key(me, p), claim.clone().into())
                    .await
                {
                    Ok(_) => {
                        fleet.link.set_claim(p, me, true);
                        tracing::info!(peer = %p, "fleet: claimed");
                    }
                    Err(e) => tracing::warn!(peer = %p, "fleet: cannot claim: {e}"),
                }
            }
            Owner::There(other) => {
                tracing::warn!(peer = %p, owner = %other, "fleet: registered here but owned by another host; not claimed")
            }
            Owner::Contested(hosts) => {
                let names: Vec<&str> = hosts.iter().map(HostName::as_str).collect();
                tracing::warn!(peer = %p, hosts = names.join(","), "fleet: claimed by more than one host; refused until one lets go")
            }
        }
    }
    for (p, hosts) in fleet.link.claims() {
        if hosts.contains(me) && !local.contains(&p) {
            match fleet.owners.delete(claim_key(me, &p)).await {
                Ok(()) => {
                    fleet.link.set_claim(&p, me, false);
                    tracing::info!(peer = %p, "fleet: let go (no longer registered here)");
                }
                Err(e) => tracing::warn!(peer = %p, "fleet: cannot let go: {e}"),
            }
        }
    }
}

/// The heartbeats heard, each with when it was heard here (this host's
/// clock: hosts' clocks may differ).
#[derive(Debug, Default)]
pub struct Beats(
    std::sync::Mutex<std::collections::BTreeMap<HostName, (std::time::Instant, Heartbeat)>>,
);

impl Beats {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::BTreeMap<HostName, (std::time::Instant, Heartbeat)>,
    > {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The hosts heard from within [`HEARTBEAT_TTL`], each with how long
    /// ago.
    pub fn live(&self) -> Vec<(HostName, Duration, Heartbeat)> {
        self.map()
            .iter()
            .filter(|(_, (at, _))| at.elapsed() < HEARTBEAT_TTL)
            .map(|(h, (at, b))| (h.clone(), at.elapsed(), b.clone()))
            .collect()
    }
}

/// Applies every heartbeat (and every clean stop) to `fleet.beats`.
async fn follow_beats(fleet: Arc<Fleet>, shutdown: CancellationToken) {
    use async_nats::jetstream::kv::Operation;
    let mut watch = None;
    loop {
        let Some(w) = watch.as_mut() else {
            match fleet.hosts.watch_with_history(">").await {
                Ok(w) => watch = Some(w),
                Err(e) => {
                    tracing::warn!("fleet: watching the hosts: {e}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
            continue;
        };
        let entry = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = w.next() => e,
        };
        match entry {
            Some(Ok(e)) => {
                let Ok(host) = HostName::new(e.key.as_str()) else {
                    continue;
                };
                let mut beats = fleet.beats.map();
                match (e.operation, serde_json::from_slice::<Heartbeat>(&e.value)) {
                    (Operation::Put, Ok(beat)) => {
                        fleet.link.heard(&host);
                        beats.insert(host, (std::time::Instant::now(), beat));
                    }
                    _ => {
                        beats.remove(&host);
                    }
                }
            }
            Some(Err(e)) => tracing::debug!("fleet: watching the hosts: {e}"),
            None => watch = None,
        }
    }
}
