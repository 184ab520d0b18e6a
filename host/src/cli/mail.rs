//! `iapeer mail [PEER]`: what waits in the mailbox, and the operator's
//! hands on it (`--retry ID`, `--drop ID`, `--status ID`). Reads and
//! writes the mailbox file directly, so it works with the daemon down.

use anyhow::{Context, bail};
use clap::Args;

use super::Ctx;
use super::verbs::{lifecycle, print_json};
use crate::clock::iso8601_utc;
use crate::mail::{Message, MessageId, Status};
use crate::names::Personality;

#[derive(Debug, Args)]
pub struct Mail {
    /// Only this peer's mail.
    peer: Option<Personality>,
    /// Also what was delivered or dead-lettered (the newest 50).
    #[arg(long)]
    all: bool,
    /// Queue a dead-lettered (or waiting) message again, with a new TTL.
    #[arg(long, value_name = "ID", conflicts_with_all = ["drop", "status"])]
    retry: Option<String>,
    /// Give up on a waiting message: dead-lettered, its sender told.
    #[arg(long, value_name = "ID", conflicts_with = "status")]
    drop: Option<String>,
    /// What became of one message.
    #[arg(long, value_name = "ID")]
    status: Option<String>,
}

impl Mail {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let lc = lifecycle(ctx.cfg)?;
        let mb = lc.mailbox()?;
        let now = lc.clock.now_ms();
        let id = |raw: &str| MessageId::parse(raw).map_err(anyhow::Error::msg);
        if let Some(raw) = &self.status {
            let status = crate::route::message_status(&lc, raw).map_err(anyhow::Error::msg)?;
            return print_status(&status, ctx.json);
        }
        if let Some(raw) = &self.retry {
            let id = id(raw)?;
            if mb.retry(&id, lc.cfg.mail_ttl, now)? == 0 {
                bail!(
                    "{id}: no such message waiting or dead-lettered (a delivered one stays delivered)"
                );
            }
            crate::outln!("{id}: queued again; the daemon delivers it when the peer can take it");
            return Ok(0);
        }
        if let Some(raw) = &self.drop {
            let id = id(raw)?;
            crate::delivery::drop_message(&lc, &id).map_err(anyhow::Error::msg)?;
            crate::outln!("{id}: dropped (dead-lettered; its sender is told)");
            return Ok(0);
        }
        let peer = self.peer.as_ref().map(Personality::as_str);
        let rows = if self.all {
            mb.history(peer, 50)?
        } else {
            // Waiting here, then waiting for another host of the fleet.
            let mut rows = mb.waiting(peer)?;
            rows.extend(
                mb.abroad()?
                    .into_iter()
                    .filter(|m| peer.is_none_or(|p| m.personality == p)),
            );
            rows
        };
        if ctx.json {
            let depth = |m: &Message| mb.depth(&m.personality).unwrap_or(0);
            let statuses: Vec<Status> = rows.iter().map(|m| Status::of(m, depth(m))).collect();
            print_json(&statuses)?;
            return Ok(0);
        }
        if rows.is_empty() {
            crate::outln!(
                "no mail waiting{}",
                peer.map(|p| format!(" for {p}")).unwrap_or_default()
            );
            return Ok(0);
        }
        for m in &rows {
            crate::outln!("{}", line(m));
        }
        Ok(0)
    }
}

/// One message on one line: id, when, from → to, state, why.
fn line(m: &Message) -> String {
    let why = m
        .why
        .as_deref()
        .map(|w| format!("  ({w})"))
        .unwrap_or_default();
    let to = match (&m.to_identity, &m.to_host) {
        (Some(identity), None) => identity.clone(),
        (to, Some(host)) => format!("{}@{host}", to.as_deref().unwrap_or(&m.personality)),
        (None, None) => m.personality.clone(),
    };
    format!(
        "{}  {}  {} → {to}  {}{why}",
        m.id,
        iso8601_utc(m.created_ms),
        m.sender,
        m.state,
    )
}

fn print_status(status: &Status, json: bool) -> anyhow::Result<i32> {
    if json {
        print_json(status)?;
        return Ok(0);
    }
    let text = serde_json::to_string_pretty(status).context("cannot print the status")?;
    crate::outln!("{text}");
    Ok(0)
}
