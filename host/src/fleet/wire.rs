//! What travels between hosts, and on which subjects. Every subject names
//! the host it is for and then the host it comes from, so the server's
//! per-host permissions (a host may publish only with its own name last)
//! make the second token the verified sender host:
//!
//! - `iap.mail.<to>.<from>`: a message, in the stream `IAP_MAIL`;
//! - `iap.status.<to>.<from>`: what became of a message, in `IAP_STATUS`;
//! - `iap.ctl.<to>.<from>`: a request to a host (its snapshot, a verb).

use serde::{Deserialize, Serialize};

use crate::names::HostName;

pub const MAIL_STREAM: &str = "IAP_MAIL";
pub const STATUS_STREAM: &str = "IAP_STATUS";
/// Key `<host>.<personality>`: that host claims that personality.
pub const OWNERS_BUCKET: &str = "iap-owners";
/// Key `<host>`: that host's heartbeat (gone when it stops beating).
pub const HOSTS_BUCKET: &str = "iap-hosts";

/// The kinds of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Kind {
    Mail,
    Status,
    Ctl,
}

/// `iap.<kind>.<to>.<from>`.
pub fn subject(kind: Kind, to: &HostName, from: &HostName) -> String {
    format!("iap.{}.{to}.{from}", <&str>::from(kind))
}

/// Everything of `kind` for `to`, from anyone.
pub fn for_host(kind: Kind, to: &HostName) -> String {
    format!("iap.{}.{to}.*", <&str>::from(kind))
}

/// The host a message on `subject` came from (the last token), checked.
pub fn sender_host(subject: &str) -> Option<HostName> {
    HostName::new(subject.rsplit('.').next()?).ok()
}

/// A message to a peer of another host. Its envelope is made by the host
/// that delivers it, from these fields, with the sender as verified there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireMessage {
    pub id: String,
    /// `<runtime>-<personality>` of the sender, a peer of the sending host.
    pub from: String,
    /// The sender's intelligence (`artificial`, `natural`).
    pub intelligence: String,
    pub to: String,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
    pub body: String,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// What became of a message, told to the host it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WireStatus {
    Waiting {
        id: String,
        why: String,
    },
    Delivered {
        id: String,
        to: String,
        woke: bool,
        #[serde(default)]
        unconfirmed: Option<String>,
        at_ms: u64,
    },
    DeadLettered {
        id: String,
        why: String,
        at_ms: u64,
    },
}

impl WireStatus {
    pub fn id(&self) -> &str {
        match self {
            WireStatus::Waiting { id, .. }
            | WireStatus::Delivered { id, .. }
            | WireStatus::DeadLettered { id, .. } => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_both_hosts_the_sender_last() {
        let a = HostName::new("lab-a").unwrap();
        let b = HostName::new("gpu").unwrap();
        let s = subject(Kind::Mail, &b, &a);
        assert_eq!(s, "iap.mail.gpu.lab-a");
        assert_eq!(sender_host(&s), Some(a));
        assert_eq!(for_host(Kind::Status, &b), "iap.status.gpu.*");
        assert_eq!(sender_host("iap.mail.gpu.Bad!"), None);
    }

    #[test]
    fn a_status_reads_back() {
        let s = WireStatus::Delivered {
            id: "x".into(),
            to: "claude-bob".into(),
            woke: true,
            unconfirmed: None,
            at_ms: 5,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"state\":\"delivered\""), "{json}");
        assert_eq!(serde_json::from_str::<WireStatus>(&json).unwrap(), s);
    }
}
