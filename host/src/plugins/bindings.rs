//! The contract versions side by side: each version's pre-linked bindings
//! and instance, and the one place a call goes to the version an adapter
//! was built against. A new contract version adds a variant and one arm
//! per call here; nothing else in the host changes.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::guest::GuestState;
use super::types::{ControlSequence, LaunchCommand, LaunchSpec, RawInfo, ResumeCheck, TurnState};
use super::{v0_1, v0_2, v0_3};

/// The bindings of one contract version, pre-linked.
pub(crate) enum VersionedPre {
    V0_1(v0_1::RuntimeAdapterPre<GuestState>),
    V0_2(v0_2::RuntimeAdapterPre<GuestState>),
    V0_3(v0_3::RuntimeAdapterPre<GuestState>),
}

/// One live instance, of the version it was built against.
pub(crate) enum VersionedInstance {
    V0_1(v0_1::RuntimeAdapter),
    V0_2(v0_2::RuntimeAdapter),
    V0_3(v0_3::RuntimeAdapter),
}

/// Every version's host imports, in one linker.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)?;
    v0_2::add_to_linker(linker)?;
    v0_3::add_to_linker(linker)
}

impl VersionedPre {
    /// The bindings for `contract` (major, minor), or `None` when this host
    /// does not serve it.
    pub fn new(
        contract: (u64, u64),
        linker: &Linker<GuestState>,
        component: &Component,
    ) -> Option<wasmtime::Result<VersionedPre>> {
        Some(match contract {
            v0_1::CONTRACT => v0_1::instance_pre(linker, component).map(VersionedPre::V0_1),
            v0_2::CONTRACT => v0_2::instance_pre(linker, component).map(VersionedPre::V0_2),
            v0_3::CONTRACT => v0_3::instance_pre(linker, component).map(VersionedPre::V0_3),
            _ => return None,
        })
    }

    pub async fn instantiate(
        &self,
        store: &mut Store<GuestState>,
    ) -> wasmtime::Result<VersionedInstance> {
        Ok(match self {
            VersionedPre::V0_1(p) => VersionedInstance::V0_1(p.instantiate_async(store).await?),
            VersionedPre::V0_2(p) => VersionedInstance::V0_2(p.instantiate_async(store).await?),
            VersionedPre::V0_3(p) => VersionedInstance::V0_3(p.instantiate_async(store).await?),
        })
    }
}

impl VersionedInstance {
    pub async fn info(&self, s: &mut Store<GuestState>) -> wasmtime::Result<RawInfo> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::info(b, s).await,
            VersionedInstance::V0_2(b) => v0_2::info(b, s).await,
            VersionedInstance::V0_3(b) => v0_3::info(b, s).await,
        }
    }

    pub async fn build_launch(
        &self,
        s: &mut Store<GuestState>,
        spec: &LaunchSpec,
    ) -> wasmtime::Result<Result<LaunchCommand, String>> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::build_launch(b, s, spec).await,
            VersionedInstance::V0_2(b) => v0_2::build_launch(b, s, spec).await,
            VersionedInstance::V0_3(b) => v0_3::build_launch(b, s, spec).await,
        }
    }

    pub async fn resolve_resume(
        &self,
        s: &mut Store<GuestState>,
        cwd: &str,
    ) -> wasmtime::Result<ResumeCheck> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::resolve_resume(b, s, cwd).await,
            VersionedInstance::V0_2(b) => v0_2::resolve_resume(b, s, cwd).await,
            VersionedInstance::V0_3(b) => v0_3::resolve_resume(b, s, cwd).await,
        }
    }

    pub async fn newest_activity_mtime(
        &self,
        s: &mut Store<GuestState>,
        cwd: &str,
    ) -> wasmtime::Result<Option<u64>> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::newest_activity_mtime(b, s, cwd).await,
            VersionedInstance::V0_2(b) => v0_2::newest_activity_mtime(b, s, cwd).await,
            VersionedInstance::V0_3(b) => v0_3::newest_activity_mtime(b, s, cwd).await,
        }
    }

    pub async fn boot_dialog_keys(
        &self,
        s: &mut Store<GuestState>,
        pane: &str,
    ) -> wasmtime::Result<Option<Vec<String>>> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::boot_dialog_keys(b, s, pane).await,
            VersionedInstance::V0_2(b) => v0_2::boot_dialog_keys(b, s, pane).await,
            VersionedInstance::V0_3(b) => v0_3::boot_dialog_keys(b, s, pane).await,
        }
    }

    pub async fn is_input_ready(
        &self,
        s: &mut Store<GuestState>,
        pane: &str,
    ) -> wasmtime::Result<bool> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::is_input_ready(b, s, pane).await,
            VersionedInstance::V0_2(b) => v0_2::is_input_ready(b, s, pane).await,
            VersionedInstance::V0_3(b) => v0_3::is_input_ready(b, s, pane).await,
        }
    }

    pub async fn control_keys(
        &self,
        s: &mut Store<GuestState>,
        command: &str,
    ) -> wasmtime::Result<Option<ControlSequence>> {
        match self {
            VersionedInstance::V0_1(b) => v0_1::control_keys(b, s, command).await,
            VersionedInstance::V0_2(b) => v0_2::control_keys(b, s, command).await,
            VersionedInstance::V0_3(b) => v0_3::control_keys(b, s, command).await,
        }
    }

    /// Where the session is in its turn; an adapter built before 0.3
    /// cannot say.
    pub async fn turn_state(
        &self,
        s: &mut Store<GuestState>,
        pane: &str,
        cwd: &str,
    ) -> wasmtime::Result<TurnState> {
        match self {
            VersionedInstance::V0_1(_) | VersionedInstance::V0_2(_) => Ok(TurnState::Unknown),
            VersionedInstance::V0_3(b) => v0_3::turn_state(b, s, pane, cwd).await,
        }
    }

    /// Whether the runtime's record holds `needle`; an adapter built
    /// before 0.3 cannot say.
    pub async fn record_holds(
        &self,
        s: &mut Store<GuestState>,
        cwd: &str,
        needle: &str,
    ) -> wasmtime::Result<Option<bool>> {
        match self {
            VersionedInstance::V0_1(_) | VersionedInstance::V0_2(_) => Ok(None),
            VersionedInstance::V0_3(b) => v0_3::record_holds(b, s, cwd, needle).await,
        }
    }
}
