//! The harness of the tests that need a toolchain beyond tmux and curl
//! (the real agent CLIs, a browser, the Python MCP SDK, the adapter
//! written in Python). Where one is missing its tests are reported
//! *ignored*, saying why, never passed; where CI requires it
//! (`IAPEER_REQUIRE_*`), they run, and fail on what is missing.

use std::path::PathBuf;

use crate::common::repo_root;

#[derive(Clone, Copy, Debug)]
pub enum Toolchain {
    /// The pinned Claude Code and Codex CLIs (tests/interop/install-clis.sh).
    RealClis,
    /// Chromium, chromedriver and Selenium.
    Browser,
    /// The official Python MCP SDK in target/interop-venv.
    McpSdk,
    /// The Gemini adapter written in Python (adapters/python-gemini/build.sh).
    PythonAdapter,
    /// `nats-server` (Debian's package) for the fleet across hosts.
    Nats,
    /// … and a network namespace of its own for a host (root, iproute2).
    Netns,
    /// `nats-server` and the browser both.
    FleetBrowser,
}

impl Toolchain {
    /// The variable that makes it required (set by `.ci/run`).
    fn required_by(self) -> &'static str {
        match self {
            Toolchain::RealClis => "IAPEER_REQUIRE_REAL_CLIS",
            Toolchain::Browser => "IAPEER_REQUIRE_DASHBOARD",
            Toolchain::McpSdk => "IAPEER_REQUIRE_INTEROP",
            Toolchain::PythonAdapter => "IAPEER_REQUIRE_PYTHON_ADAPTER",
            Toolchain::Nats => "IAPEER_REQUIRE_FLEET",
            Toolchain::Netns => "IAPEER_REQUIRE_NETNS",
            Toolchain::FleetBrowser => "IAPEER_REQUIRE_DASHBOARD",
        }
    }

    /// Why it cannot run here, if it cannot.
    fn missing(self) -> Option<String> {
        match self {
            Toolchain::RealClis => [crate::real::claude_path(), crate::real::codex_path()]
                .into_iter()
                .find(|p| !p.exists())
                .map(|p| {
                    format!(
                        "{} is not installed (tests/interop/install-clis.sh)",
                        p.display()
                    )
                }),
            Toolchain::Browser => crate::browser::driver_python(&repo_root())
                .err()
                .map(|why| {
                    format!("{why} (.ci/run installs chromium, chromium-driver and Selenium)")
                }),
            Toolchain::McpSdk => {
                let python = mcp_sdk_python();
                (!python.exists()).then(|| {
                    format!(
                        "no Python MCP SDK at {} (.ci/run installs it)",
                        python.display()
                    )
                })
            }
            Toolchain::Nats => crate::nats::nats_server()
                .err()
                .map(|why| format!("{why} (.ci/run installs it)")),
            Toolchain::Netns => Toolchain::Nats
                .missing()
                .or_else(crate::nats::Netns::unavailable),
            Toolchain::FleetBrowser => Toolchain::Nats
                .missing()
                .or_else(|| Toolchain::Browser.missing()),
            Toolchain::PythonAdapter => {
                std::env::var_os("IAPEER_PYTHON_ADAPTER")
                    .is_none()
                    .then(|| {
                        "IAPEER_PYTHON_ADAPTER is not set (adapters/python-gemini/build.sh)".into()
                    })
            }
        }
    }
}

/// The Python that has the MCP SDK (`IAPEER_INTEROP_PYTHON`, else the venv
/// `.ci/run` makes).
pub fn mcp_sdk_python() -> PathBuf {
    std::env::var_os("IAPEER_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/interop-venv/bin/python"))
}

/// A test: its name and its body (a panic fails it).
pub type Case = (&'static str, fn());

/// `cases![a, b]`: the named functions as [`Case`]s.
#[macro_export]
macro_rules! cases {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as fn())),*]
    };
}

/// Runs every group's cases (libtest's arguments and output), each group
/// ignored, and said so, where its toolchain (if any) is missing and not
/// required.
pub fn run(groups: &[(Option<Toolchain>, &[Case])]) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = Vec::new();
    for &(toolchain, cases) in groups {
        let missing = toolchain.and_then(|t| {
            t.missing()
                .filter(|_| std::env::var_os(t.required_by()).is_none())
                .map(|why| format!("{t:?}: {why}"))
        });
        if let Some(why) = &missing {
            eprintln!("ignored: {} test(s) need {why}", cases.len());
        }
        for &(name, test) in cases {
            trials.push(
                libtest_mimic::Trial::test(name, move || {
                    test();
                    Ok(())
                })
                .with_ignored_flag(missing.is_some()),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit()
}
