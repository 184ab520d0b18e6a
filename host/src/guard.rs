//! Hands off: a peer owned by launchd — or, on Linux, by a systemd user unit — is
//! hands-off. The daemon never wakes, reaps or relaunches it (its supervisor
//! owns the lifecycle and would fight us on the live fleet). The detector is
//! mere file existence, checked first everywhere a decision could touch the
//! peer, and again inside the wake lock.

use crate::config::Config;
use crate::names::Personality;

/// Which external supervisor owns a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Launchd(std::path::PathBuf),
    SystemdUser(std::path::PathBuf),
}

impl Owner {
    /// The supervisor's name: `launchd`, `systemd`.
    pub fn name(&self) -> &'static str {
        match self {
            Owner::Launchd(_) => "launchd",
            Owner::SystemdUser(_) => "systemd",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Owner::Launchd(_) => "launchd-managed",
            Owner::SystemdUser(_) => "systemd-managed",
        }
    }
}

/// `Some(owner)` when `com.iapeer.<p>.plist` exists in the LaunchAgents dir,
/// or `iapeer-<p>.service` in the systemd user unit dir.
pub fn external_owner(cfg: &Config, p: &Personality) -> Option<Owner> {
    let [plist, unit] = cfg.supervisor_unit_paths(p);
    if plist.exists() {
        Some(Owner::Launchd(plist))
    } else if unit.exists() {
        Some(Owner::SystemdUser(unit))
    } else {
        None
    }
}

pub fn is_externally_managed(cfg: &Config, p: &Personality) -> bool {
    external_owner(cfg, p).is_some()
}
