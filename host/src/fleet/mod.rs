//! A fleet across machines on NATS JetStream. Each daemon joins with its
//! host name; the fleet holds who owns which personality (a KV bucket,
//! `claims`), each host's heartbeat (a KV bucket with a TTL), and two
//! streams: mail for a host (`outbox` publishes, `inbox` takes it into the
//! owner's mailbox and acks once committed) and what became of it (`inbox`
//! reports, `outbox` applies). Only the owning host ever types into a
//! pane; exactly once rests on the message id (the stream's dedup, and the
//! owner's mailbox, where an id is taken in once).

mod claims;
pub mod ctl;
mod inbox;
mod outbox;
pub mod permissions;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Env;
use crate::fleetlink::FleetLink;
use crate::lifecycle::Lifecycle;
use crate::names::HostName;

/// The daemon's lifecycle as it is now (a plugin reload replaces it).
pub type Current = Arc<dyn Fn() -> Arc<Lifecycle> + Send + Sync>;

/// How a daemon joins a fleet (`iapeerd --fleet …`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FleetArgs {
    /// Join the fleet at this NATS server (`nats://HOST:PORT`, `tls://…` for
    /// TLS; default: $IAPEER_FLEET). Without it: one machine, no NATS.
    #[arg(long, value_name = "URL")]
    pub fleet: Option<String>,
    /// This host's name in the fleet (default: $IAPEER_HOST_NAME, else the
    /// machine's name).
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// A NATS credentials file (JWT and seed) (default: $IAPEER_FLEET_CREDS).
    #[arg(long, value_name = "FILE")]
    pub fleet_creds: Option<PathBuf>,
    /// A file holding this host's NATS user nkey seed (`SU…`) (default:
    /// $IAPEER_FLEET_NKEY).
    #[arg(long, value_name = "FILE")]
    pub fleet_nkey: Option<PathBuf>,
    /// A CA certificate (PEM) the server's TLS certificate is checked
    /// against, besides the system's (default: $IAPEER_FLEET_CA).
    #[arg(long, value_name = "FILE")]
    pub fleet_ca: Option<PathBuf>,
}

/// Where and as whom to join, settled from the flags and the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub host: HostName,
    pub creds: Option<PathBuf>,
    pub nkey: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

impl FleetArgs {
    /// The settings, or `None` when no fleet is named.
    pub fn settings(&self, env: &Env) -> anyhow::Result<Option<Settings>> {
        let var = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        let Some(url) = self.fleet.clone().or_else(|| var("IAPEER_FLEET")) else {
            return Ok(None);
        };
        let host = match self.host_name.clone().or_else(|| var("IAPEER_HOST_NAME")) {
            Some(h) => HostName::new(h.trim())?,
            None => HostName::of_machine(),
        };
        let path = |flag: &Option<PathBuf>, name: &str| {
            flag.clone().or_else(|| var(name).map(PathBuf::from))
        };
        Ok(Some(Settings {
            url,
            host,
            creds: path(&self.fleet_creds, "IAPEER_FLEET_CREDS"),
            nkey: path(&self.fleet_nkey, "IAPEER_FLEET_NKEY"),
            ca: path(&self.fleet_ca, "IAPEER_FLEET_CA"),
        }))
    }
}

/// The inbox prefix of a host's requests: replies to it go to subjects
/// only it may subscribe to.
pub fn inbox_prefix(host: &HostName) -> String {
    format!("_INBOX_{host}")
}

/// A joined fleet: the connection and the link the rest of the daemon
/// reads.
pub struct Fleet {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub link: Arc<FleetLink>,
    pub hosts: async_nats::jetstream::kv::Store,
    pub owners: async_nats::jetstream::kv::Store,
    /// Every host's last heartbeat, as heard.
    pub beats: claims::Beats,
}

/// How long one publish or request to the fleet may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(s: &Settings) -> anyhow::Result<async_nats::Client> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("iapeerd {}", s.host))
        .custom_inbox_prefix(inbox_prefix(&s.host))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connection_timeout(REQUEST_TIMEOUT)
        // A connection lost later is retried by the client; the first one
        // is retried by the join, which says why it failed.
        .event_callback(|e| async move {
            match e {
                async_nats::Event::Connected | async_nats::Event::Disconnected => {
                    tracing::info!("fleet: {e}")
                }
                _ => tracing::debug!("fleet: {e}"),
            }
        });
    if let Some(creds) = &s.creds {
        opts = opts
            .credentials_file(creds)
            .await
            .with_context(|| format!("cannot read the NATS credentials {}", creds.display()))?;
    }
    if let Some(nkey) = &s.nkey {
        let seed = read_secret(nkey)
            .with_context(|| format!("cannot read the nkey seed {}", nkey.display()))?;
        opts = opts.nkey(seed.trim().to_string());
    }
    if let Some(ca) = &s.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    opts.connect(s.url.as_str())
        .await
        .with_context(|| format!("cannot reach the fleet at {}", s.url))
}

/// A secret file: regular, and readable by its owner only.
fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let text = crate::fsutil::read_regular_text(path, 4096)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "it is readable by others (mode {:o}): chmod 600 it",
            mode & 0o777
        );
    }
    Ok(text)
}

/// How long mail and news wait in the fleet's streams for a host that
/// does not come back (past any message's time to live).
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Makes (or finds) the streams and buckets the fleet runs on, and checks
/// that one found is as this code makes it: a stream made first by someone
/// else (another host, with the permission to make it) could otherwise
/// catch other hosts' subjects or allow what the permissions rely on not.
async fn ensure_layout(
    js: &jetstream::Context,
) -> anyhow::Result<(jetstream::kv::Store, jetstream::kv::Store)> {
    for (name, subjects) in [
        (wire::MAIL_STREAM, "iap.mail.>"),
        (wire::STATUS_STREAM, "iap.status.>"),
    ] {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.into(),
                subjects: vec![subjects.into()],
                // Each host's consumer takes only its own subjects; a
                // message leaves the stream once its host has it.
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(600),
                max_age: STREAM_MAX_AGE,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot open the fleet's stream {name}"))?;
        let c = &stream.cached_info().config;
        check_layout(
            name,
            c.subjects == [subjects]
                && c.retention == stream::RetentionPolicy::WorkQueue
                && !c.allow_rollup,
        )?;
    }
    let owners = kv(js, wire::OWNERS_BUCKET, Duration::ZERO).await?;
    let hosts = kv(js, wire::HOSTS_BUCKET, claims::HEARTBEAT_TTL).await?;
    Ok((owners, hosts))
}

fn check_layout(name: &str, as_made: bool) -> anyhow::Result<()> {
    if as_made {
        return Ok(());
    }
    anyhow::bail!(
        "the fleet's stream {name} is not as iapeerd makes it (its subjects, retention or roll-ups): remove it with an administrator's account and let a daemon make it again"
    )
}

/// A KV bucket, made as the client library would make it but without its
/// query of the account (whose answer from the server Debian ships, 2.9,
/// the library cannot read), and without roll-ups: one message with a
/// roll-up header would wipe every host's keys.
async fn kv(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
) -> anyhow::Result<jetstream::kv::Store> {
    let name = format!("KV_{bucket}");
    let stream = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            allow_rollup: false,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            num_replicas: 1,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot make the fleet's bucket {bucket}"))?;
    let c = &stream.cached_info().config;
    check_layout(
        &name,
        c.subjects == [format!("$KV.{bucket}.>")]
            && !c.allow_rollup
            && c.max_messages_per_subject == 1,
    )?;
    js.get_key_value(bucket)
        .await
        .with_context(|| format!("cannot open the fleet's bucket {bucket}"))
}

/// A durable pull consumer of `stream` for this host's subjects of `kind`.
async fn consumer_for(
    js: &jetstream::Context,
    stream: &str,
    kind: wire::Kind,
    host: &HostName,
) -> anyhow::Result<consumer::PullConsumer> {
    let stream = js
        .get_stream(stream)
        .await
        .with_context(|| format!("cannot open the fleet's stream {stream}"))?;
    let name = format!("{}-{host}", <&str>::from(kind));
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: wire::for_host(kind, host),
                ack_policy: consumer::AckPolicy::Explicit,
                // Taken in (or told) and acked well within this; a daemon
                // killed in between gets it again and takes it in once.
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot open the consumer {name}"))
}

/// What a consumer's handler made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Done with (kept, applied, or refused for good): acked.
    Done,
    /// Not now (this host could not keep it): the stream offers it again.
    Again,
}

/// Feeds each message of `consumer` to `handle`, in order, acking it once
/// handled. Handling is idempotent (a message id is kept once, news
/// applied twice changes nothing), so a message offered again after a
/// crash or a lost ack does no harm.
async fn consume<F, Fut>(consumer: consumer::PullConsumer, shutdown: CancellationToken, handle: F)
where
    F: Fn(async_nats::Message) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    loop {
        let mut messages = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            m = consumer.messages() => match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("fleet: cannot read a consumer: {e}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = messages.next() => n,
            };
            let msg = match next {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    tracing::debug!("fleet: consumer: {e}");
                    continue;
                }
                None => break,
            };
            match handle(msg.message.clone()).await {
                // Not waiting for the server to confirm: a message offered
                // again because an ack was lost is kept once anyway.
                Handled::Done => {
                    if let Err(e) = msg.ack().await {
                        tracing::warn!("fleet: ack: {e}");
                    }
                }
                Handled::Again => {
                    let _ = msg
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        }
    }
}

/// Joins the fleet: the connection, the layout, the claims of this host's
/// peers, then the tasks that carry mail both ways, answer requests and
/// beat the heart. They stop with `shutdown`.
pub async fn join(
    settings: &Settings,
    current: Current,
    link: Arc<FleetLink>,
    answer: ctl::Answerer,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Fleet>> {
    // Everything that can fail comes before any task starts, so a join
    // tried again starts each task once.
    let client = connect(settings).await?;
    let js = jetstream::new(client.clone());
    let (owners, hosts) = ensure_layout(&js).await?;
    let me = link.host().clone();
    let mail = consumer_for(&js, wire::MAIL_STREAM, wire::Kind::Mail, &me).await?;
    let status = consumer_for(&js, wire::STATUS_STREAM, wire::Kind::Status, &me).await?;
    let calls = client
        .subscribe(wire::for_host(wire::Kind::Ctl, &me))
        .await?;
    let fleet = Arc::new(Fleet {
        client,
        js,
        link,
        hosts,
        owners,
        beats: claims::Beats::default(),
    });
    claims::start(&fleet, &current, tasks, shutdown.clone()).await?;
    tasks.spawn(inbox::take_in(
        fleet.clone(),
        current.clone(),
        mail,
        shutdown.clone(),
    ));
    tasks.spawn(inbox::report(
        fleet.clone(),
        current.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(outbox::forward(
        fleet.clone(),
        current.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(outbox::hear(
        fleet.clone(),
        current,
        status,
        shutdown.clone(),
    ));
    ctl::serve(&fleet, calls, answer, tasks, shutdown);
    Ok(fleet)
}
