//! What every contract version module has in the same words: linking,
//! pre-instantiation, the guest calls whose types did not change between
//! versions, and the `host-fs` error and entry conversions. Each version
//! module invokes [`version_glue!`] after its `bindgen!`; the names
//! (`RuntimeAdapter`, `guest`, `wit`) resolve to that version's bindings.

macro_rules! version_glue {
    () => {
        pub fn add_to_linker(
            linker: &mut wasmtime::component::Linker<$crate::plugins::guest::GuestState>,
        ) -> wasmtime::Result<()> {
            RuntimeAdapter::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |state| {
                state
            })
        }

        pub fn instance_pre(
            linker: &wasmtime::component::Linker<$crate::plugins::guest::GuestState>,
            component: &wasmtime::component::Component,
        ) -> wasmtime::Result<RuntimeAdapterPre<$crate::plugins::guest::GuestState>> {
            RuntimeAdapterPre::new(linker.instantiate_pre(component)?)
        }

        fn api(b: &RuntimeAdapter) -> &guest::Guest {
            b.iapeer_adapter_adapter()
        }

        pub async fn resolve_resume(
            b: &RuntimeAdapter,
            store: &mut wasmtime::Store<$crate::plugins::guest::GuestState>,
            cwd: &str,
        ) -> wasmtime::Result<$crate::plugins::types::ResumeCheck> {
            use $crate::plugins::types::ResumeCheck;
            Ok(match api(b).call_resolve_resume(store, cwd).await? {
                Ok(reference) => ResumeCheck::Resumable(reference),
                Err(reason) => ResumeCheck::Nothing(reason),
            })
        }

        pub async fn newest_activity_mtime(
            b: &RuntimeAdapter,
            store: &mut wasmtime::Store<$crate::plugins::guest::GuestState>,
            cwd: &str,
        ) -> wasmtime::Result<Option<u64>> {
            api(b).call_newest_activity_mtime(store, cwd).await
        }

        pub async fn boot_dialog_keys(
            b: &RuntimeAdapter,
            store: &mut wasmtime::Store<$crate::plugins::guest::GuestState>,
            pane: &str,
        ) -> wasmtime::Result<Option<Vec<String>>> {
            api(b).call_boot_dialog_keys(store, pane).await
        }

        pub async fn is_input_ready(
            b: &RuntimeAdapter,
            store: &mut wasmtime::Store<$crate::plugins::guest::GuestState>,
            pane: &str,
        ) -> wasmtime::Result<bool> {
            api(b).call_is_input_ready(store, pane).await
        }

        pub async fn control_keys(
            b: &RuntimeAdapter,
            store: &mut wasmtime::Store<$crate::plugins::guest::GuestState>,
            command: &str,
        ) -> wasmtime::Result<Option<$crate::plugins::types::ControlSequence>> {
            Ok(api(b).call_control_keys(store, command).await?.map(|s| {
                $crate::plugins::types::ControlSequence {
                    steps: s.steps,
                    step_delay_ms: s.step_delay_ms,
                }
            }))
        }

        fn fs_error(e: $crate::plugins::hostfs::FsError) -> wit::FsError {
            use $crate::plugins::hostfs::FsError;
            match e {
                FsError::NotFound => wit::FsError::NotFound,
                FsError::NotPermitted => wit::FsError::NotPermitted,
                FsError::TooLarge => wit::FsError::TooLarge,
                FsError::Io(m) => wit::FsError::Io(m),
            }
        }

        fn dir_entry(e: &$crate::plugins::hostfs::Entry) -> wit::DirEntry {
            use $crate::plugins::hostfs::EntryKind;
            wit::DirEntry {
                name: e.name.clone(),
                kind: match e.kind {
                    EntryKind::File => wit::EntryKind::File,
                    EntryKind::Directory => wit::EntryKind::Directory,
                    EntryKind::Symlink => wit::EntryKind::Symlink,
                    EntryKind::Other => wit::EntryKind::Other,
                },
                mtime_ms: e.mtime_ms,
                size: e.size,
            }
        }
    };
}
