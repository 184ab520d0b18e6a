//! What a host may do on the fleet's NATS server, as a `nats-server`
//! `authorization` user: it publishes mail, news and calls only with its
//! own name as the sender token, writes only its own claims and heartbeat,
//! reads only its own consumers, and subscribes only to its own calls and
//! inbox. So the sender host a receiver reads off a subject is the one
//! that published it, and no host can speak for another's peers.

use super::wire::{HOSTS_BUCKET, MAIL_STREAM, OWNERS_BUCKET, STATUS_STREAM};
use crate::names::HostName;

/// How the host proves who it is.
#[derive(Debug, Clone)]
pub enum Login {
    /// A user nkey (its public key, `U…`).
    Nkey(String),
    /// A user name and password.
    Password { user: String, password: String },
}

/// The subjects `host` may publish to.
pub fn publish_allow(host: &HostName) -> Vec<String> {
    let mut allow = vec![
        format!("iap.mail.*.{host}"),
        format!("iap.status.*.{host}"),
        format!("iap.ctl.*.{host}"),
        format!("$KV.{OWNERS_BUCKET}.{host}.>"),
        format!("$KV.{HOSTS_BUCKET}.{host}"),
        // Reading the layout, and making it on first use.
        "$JS.API.INFO".into(),
    ];
    for stream in [MAIL_STREAM, STATUS_STREAM] {
        allow.push(format!("$JS.API.STREAM.INFO.{stream}"));
        allow.push(format!("$JS.API.STREAM.CREATE.{stream}"));
    }
    for (stream, kind) in [(MAIL_STREAM, "mail"), (STATUS_STREAM, "status")] {
        let durable = format!("{kind}-{host}");
        // Its own consumer, made only with its own filter in the subject
        // (the server holds the request's filter to it, on a new consumer
        // and on one updated alike).
        allow.push(format!(
            "$JS.API.CONSUMER.CREATE.{stream}.{durable}.iap.{kind}.{host}.*"
        ));
        for op in ["INFO", "MSG.NEXT"] {
            allow.push(format!("$JS.API.CONSUMER.{op}.{stream}.{durable}"));
        }
        allow.push(format!("$JS.ACK.{stream}.{durable}.>"));
    }
    for bucket in [OWNERS_BUCKET, HOSTS_BUCKET] {
        let stream = format!("KV_{bucket}");
        allow.push(format!("$JS.API.STREAM.INFO.{stream}"));
        allow.push(format!("$JS.API.STREAM.CREATE.{stream}"));
        allow.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        allow.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
        // The ordered consumers of a watch or a listing of keys.
        allow.push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        allow.push(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        allow.push(format!("$JS.API.CONSUMER.DELETE.{stream}.*"));
        allow.push(format!("$JS.API.CONSUMER.INFO.{stream}.*"));
    }
    allow.push("$JS.FC.>".into());
    allow
}

/// The subjects `host` may subscribe to.
pub fn subscribe_allow(host: &HostName) -> Vec<String> {
    vec![
        format!("iap.ctl.{host}.*"),
        format!("{}.>", super::inbox_prefix(host)),
    ]
}

/// The `authorization` user block for `host` (nats-server's config
/// syntax, which takes JSON).
pub fn user_block(host: &HostName, login: &Login) -> serde_json::Value {
    let mut user = serde_json::json!({
        "permissions": {
            "publish": { "allow": publish_allow(host) },
            "subscribe": { "allow": subscribe_allow(host) },
            // Answers to calls go to the caller's inbox.
            "allow_responses": true,
        }
    });
    match login {
        Login::Nkey(key) => user["nkey"] = key.clone().into(),
        Login::Password { user: u, password } => {
            user["user"] = u.clone().into();
            user["password"] = password.clone().into();
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_publishes_only_as_itself() {
        let a = HostName::new("a").unwrap();
        let allow = publish_allow(&a);
        assert!(allow.contains(&"iap.mail.*.a".to_string()));
        assert!(allow.contains(&"$KV.iap-owners.a.>".to_string()));
        assert!(!allow.iter().any(|s| s.contains(".b") || s == "iap.mail.>"));
        assert!(
            !allow
                .iter()
                .any(|s| s.contains("DELETE.IAP_") || s.contains("PURGE"))
        );
        let block = user_block(&a, &Login::Nkey("UXYZ".into()));
        assert_eq!(block["nkey"], "UXYZ");
        assert_eq!(block["permissions"]["subscribe"]["allow"][1], "_INBOX_a.>");
    }
}
