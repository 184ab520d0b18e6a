"""The Gemini CLI adapter, written in Python (componentize-py).

The same runtime knowledge as the Rust example in adapters/gemini, on the
current contract (iapeer:adapter@0.2): it passes the same golden tests
(tests/adapters.rs, `gemini_goldens`). Build it with build.sh.
"""

import hashlib

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host_fs, types

TMP_DIR = ".gemini/tmp"
TRUST_DIALOG = "Do you trust this folder?"
BOOT_MARKERS = (TRUST_DIALOG, "Waiting for auth")
COMPOSER_PLACEHOLDER = "Type your message"


def chats_dir(cwd: str) -> str:
    """Gemini keeps a project's chats under ~/.gemini/tmp/<sha256(cwd)>/chats."""
    return f"{TMP_DIR}/{hashlib.sha256(cwd.encode()).hexdigest()}/chats"


def newest_chat(cwd: str):
    try:
        entries = host_fs.list_dir(chats_dir(cwd))
    except Err:
        return None
    mtimes = [
        e.mtime_ms
        for e in entries
        if e.kind != types.EntryKind.DIRECTORY and e.name.endswith(".json")
    ]
    return max(mtimes) if mtimes else None


def keys(*names: str) -> list:
    return list(names)


class Adapter(exports.Adapter):
    def info(self) -> types.AdapterInfo:
        return types.AdapterInfo(
            runtime="gemini",
            version="0.2.0",
            kind=types.Kind.TUI,
            uses_doctrine=True,
            requires_intelligence=None,
            default_binary="gemini",
            binary_env="IAPEER_GEMINI_BIN",
            read_dirs=[TMP_DIR],
            cwd_read_paths=[],
            default_intelligence=None,
            binary_dirs=["~/.local/bin", "/opt/homebrew/bin"],
            env_remove=[],
            delivery=types.DeliveryMarkers(paste_placeholders=[], composer_rows=6),
            # CPython inside: more room than the host's 64 MiB default.
            limits=types.Limits(memory_mib=128, call_ms=2000, scan_ms=10000),
        )

    def build_launch(self, spec: types.LaunchSpec) -> types.LaunchCommand:
        head = [spec.binary, "--yolo"]
        if spec.resume:
            head += ["--resume", "latest"]
        env = []
        if spec.system_prompt_file is not None:
            env.append(types.EnvVar(name="GEMINI_SYSTEM_MD", value=spec.system_prompt_file))
        return types.LaunchCommand(argv=head + list(spec.extra_args), env=env)

    def resolve_resume(self, cwd: str):
        if newest_chat(cwd) is None:
            raise Err("no gemini chat to resume")
        return None

    def newest_activity_mtime(self, cwd: str):
        return newest_chat(cwd)

    def boot_dialog_keys(self, pane: str):
        # "1. Trust folder" is the default option.
        return keys("Enter") if TRUST_DIALOG in pane else None

    def is_input_ready(self, pane: str) -> bool:
        return not any(m in pane for m in BOOT_MARKERS) and COMPOSER_PLACEHOLDER in pane

    def control_keys(self, command: str):
        if command == "interrupt":
            return types.ControlSequence(steps=[keys("Escape")], step_delay_ms=0)
        if command == "compact":
            return types.ControlSequence(steps=[keys("-l", "/compact"), keys("Enter")], step_delay_ms=300)
        return None
