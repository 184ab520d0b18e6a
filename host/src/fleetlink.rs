//! What the rest of the daemon knows of the fleet: this host's name, who
//! owns which personality (as the fleet's ownership bucket last said), and
//! a nudge for the task that hands outbound mail to the fleet. The NATS
//! side lives in `fleet/`; this module has no NATS in it, so routing and
//! the lifecycle can ask without depending on the transport.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use tokio::sync::Notify;

use crate::names::{HostName, Personality};

/// Who a personality belongs to in the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This host alone.
    Here,
    /// Another host alone.
    There(HostName),
    /// No host claims it.
    Nobody,
    /// More than one host claims it: refused until one lets go.
    Contested(Vec<HostName>),
}

/// This host's view of the fleet.
#[derive(Debug)]
pub struct FleetLink {
    host: HostName,
    /// Personality → the hosts that claim it.
    claims: RwLock<BTreeMap<Personality, BTreeSet<HostName>>>,
    /// Every host heard beating since this daemon joined.
    heard: RwLock<BTreeSet<HostName>>,
    outbound: Notify,
}

impl FleetLink {
    pub fn new(host: HostName) -> FleetLink {
        FleetLink {
            host,
            claims: RwLock::default(),
            heard: RwLock::default(),
            outbound: Notify::new(),
        }
    }

    pub fn host(&self) -> &HostName {
        &self.host
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Personality, BTreeSet<HostName>>> {
        self.claims
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Personality, BTreeSet<HostName>>> {
        self.claims
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `host` claims `p` (`true`) or let it go (`false`).
    pub fn set_claim(&self, p: &Personality, host: &HostName, claimed: bool) {
        let mut claims = self.write();
        if claimed {
            claims.entry(p.clone()).or_default().insert(host.clone());
        } else if let Some(hosts) = claims.get_mut(p) {
            hosts.remove(host);
            if hosts.is_empty() {
                claims.remove(p);
            }
        }
    }

    /// Who owns `p`.
    pub fn owner(&self, p: &Personality) -> Owner {
        let claims = self.read();
        let Some(hosts) = claims.get(p) else {
            return Owner::Nobody;
        };
        let mut it = hosts.iter();
        match (it.next(), it.next()) {
            (None, _) => Owner::Nobody,
            (Some(h), None) if *h == self.host => Owner::Here,
            (Some(h), None) => Owner::There(h.clone()),
            _ => Owner::Contested(hosts.iter().cloned().collect()),
        }
    }

    /// Whether `host` is among those that claim `p`.
    pub fn claimed_by(&self, p: &Personality, host: &HostName) -> bool {
        self.read().get(p).is_some_and(|h| h.contains(host))
    }

    /// `host` was heard beating.
    pub fn heard(&self, host: &HostName) {
        self.heard
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(host.clone());
    }

    /// Whether `host` is in the fleet: this one, one heard beating, or one
    /// that claims a peer.
    pub fn knows(&self, host: &HostName) -> bool {
        *host == self.host
            || self
                .heard
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(host)
            || self.read().values().any(|hosts| hosts.contains(host))
    }

    /// Every claim: personality → hosts.
    pub fn claims(&self) -> BTreeMap<Personality, BTreeSet<HostName>> {
        self.read().clone()
    }

    /// Outbound mail was committed: the forwarder looks now.
    pub fn nudge_outbound(&self) {
        self.outbound.notify_one();
    }

    pub async fn outbound_nudged(&self) {
        self.outbound.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claimant_owns_two_contest() {
        let here = HostName::new("a").unwrap();
        let there = HostName::new("b").unwrap();
        let link = FleetLink::new(here.clone());
        let bob = Personality::new("bob").unwrap();
        assert_eq!(link.owner(&bob), Owner::Nobody);
        link.set_claim(&bob, &there, true);
        assert_eq!(link.owner(&bob), Owner::There(there.clone()));
        link.set_claim(&bob, &here, true);
        assert_eq!(
            link.owner(&bob),
            Owner::Contested(vec![here.clone(), there.clone()])
        );
        link.set_claim(&bob, &there, false);
        assert_eq!(link.owner(&bob), Owner::Here);
        link.set_claim(&bob, &here, false);
        assert_eq!(link.owner(&bob), Owner::Nobody);
    }
}
