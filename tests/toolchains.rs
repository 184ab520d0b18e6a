//! The tests that need a toolchain beyond tmux and curl: the real Claude
//! Code and Codex CLIs, a browser, the official Python MCP SDK, the adapter
//! written in Python, a NATS server. One binary under its own harness
//! (`common/toolchain.rs`): where a toolchain is missing its tests are
//! reported ignored, with why; `.ci/run` installs them all and requires
//! them.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/gemini.rs"]
mod gemini;
#[path = "common/nats.rs"]
mod nats;
#[path = "common/real.rs"]
mod real;
#[path = "common/toolchain.rs"]
mod toolchain;

// Each module's tests are listed in its `CASES`: one left out is dead code.
#[deny(dead_code)]
mod dashboard;
#[deny(dead_code)]
mod fleet;
#[deny(dead_code)]
mod mcp_sdk;
#[deny(dead_code)]
mod python_adapter;
#[deny(dead_code)]
mod quickstart;
#[deny(dead_code)]
mod real_end_to_end;
#[deny(dead_code)]
mod real_runtimes;

use toolchain::Toolchain;

fn main() {
    toolchain::run(&[
        (None, dashboard::CASES),
        (Some(Toolchain::Browser), dashboard::BROWSER_CASES),
        (Some(Toolchain::Nats), fleet::CASES),
        (Some(Toolchain::Netns), fleet::NETNS_CASES),
        (Some(Toolchain::FleetBrowser), fleet::BROWSER_CASES),
        (Some(Toolchain::McpSdk), mcp_sdk::CASES),
        (Some(Toolchain::McpSdk), quickstart::CASES),
        (Some(Toolchain::PythonAdapter), python_adapter::CASES),
        (Some(Toolchain::RealClis), real_end_to_end::CASES),
        (Some(Toolchain::RealClis), real_runtimes::CASES),
    ])
}
