//! `iapeer status`: asks the running daemon (over its Unix socket) how it
//! is — pid, version, uptime, listeners, adapters, sessions, the last tick.
//! Exit 1 when no daemon answers.

use anyhow::Context;
use serde_json::Value;

use super::verbs::{block_on, print_json};
use crate::config::Config;

pub fn status(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let sock = crate::discovery::read(cfg)
        .and_then(|d| d.sock)
        .unwrap_or_else(|| cfg.daemon_socket.clone());
    let answer = block_on(crate::client::get_json(
        &sock,
        "/fleet/v1/status",
        cfg.bearer_token.as_deref(),
    ))?
    .with_context(|| format!("no daemon answers on {}", sock.display()))?;
    if json {
        print_json(&answer)?;
        return Ok(0);
    }
    crate::out!("{}", render(&answer));
    Ok(0)
}

fn render(s: &Value) -> String {
    let str_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = format!(
        "iapeerd {} running (pid {}, up {}s, since {})\n",
        str_of(&s["version"]),
        str_of(&s["pid"]),
        str_of(&s["uptime_secs"]),
        str_of(&s["started"]),
    );
    out.push_str(&format!("root:      {}\n", str_of(&s["root"])));
    out.push_str(&format!("socket:    {}\n", str_of(&s["listeners"]["sock"])));
    out.push_str(&format!("tcp:       {}\n", str_of(&s["listeners"]["tcp"])));
    out.push_str(&format!("dashboard: {}\n", str_of(&s["dashboard"])));
    out.push_str(&format!(
        "operator:  {}\n",
        match (&s["operator"], &s["operator_problem"]) {
            (Value::String(op), _) => format!("{op} (the dashboard's sends come from it)"),
            (_, Value::String(problem)) => format!("none: {problem}"),
            _ => "none".into(),
        }
    ));
    let adapters: Vec<String> = s["adapters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let name = str_of(&a["runtime"]);
            match a["state"].as_str() {
                Some("loaded") => name,
                Some(state) => format!("{name} ({state})"),
                None => name,
            }
        })
        .collect();
    out.push_str(&format!("adapters:  {}\n", adapters.join(", ")));
    out.push_str(&format!("sessions:  {} recorded\n", str_of(&s["sessions"])));
    match s["last_tick"].as_object() {
        None => out.push_str(&format!(
            "last tick: none yet (every {}s)\n",
            str_of(&s["tick_secs"])
        )),
        Some(t) => {
            let actions: Vec<String> = t
                .get("actions")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "last tick: {} ({} ms) {}{}\n",
                str_of(&t["at"]),
                str_of(&t["ms"]),
                if actions.is_empty() {
                    "no sessions".to_string()
                } else {
                    actions.join(" ")
                },
                match t.get("relaunched").and_then(Value::as_u64) {
                    Some(n) if n > 0 => format!(" relaunched={n}"),
                    _ => String::new(),
                }
            ));
        }
    }
    out
}
