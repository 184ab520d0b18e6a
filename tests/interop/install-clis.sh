#!/usr/bin/env bash
# Install the REAL agent CLIs, pinned, from the npm registry into
# target/real-clis/ (idempotent: a CLI whose binary is already there is skipped).
# Prints the two binary paths on stdout (claude first, then codex) and exits 0.
#
# IAPEER_CLI_VERSIONS=latest installs the newest published versions instead
# (drift watch: tests/interop/drift-watch runs the real-runtime suites on them).
#
# Notes (claude-code 2.1.332):
#  * the npm package `@anthropic-ai/claude-code` is only a wrapper; the real CLI
#    is a ~400 MB native ELF shipped in the optional dependency
#    `@anthropic-ai/claude-code-linux-x64` (same version).  Its postinstall
#    (`node install.cjs`) hard-links that binary over the placeholder
#    `bin/claude.exe`, which `node_modules/.bin/claude` points at.  No download
#    from outside the npm registry happens.
#  * package.json says engines.node >=22; with node 20 npm only warns
#    (EBADENGINE) and the native binary runs fine (it does not use node).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${REAL_CLIS_DIR:-$ROOT/target/real-clis}"

CLAUDE_VERSION=2.1.332
CODEX_VERSION=0.171.0
case "${IAPEER_CLI_VERSIONS:-pinned}" in
  pinned) ;;
  latest)
    CLAUDE_VERSION=$(npm view @anthropic-ai/claude-code version)
    CODEX_VERSION=$(npm view @openai/codex version)
    echo "install-clis: latest published: claude-code $CLAUDE_VERSION, codex $CODEX_VERSION" >&2 ;;
  *) echo "install-clis: IAPEER_CLI_VERSIONS must be pinned or latest" >&2; exit 2 ;;
esac

CLAUDE_DIR="$DEST/claude-$CLAUDE_VERSION"
CODEX_DIR="$DEST/codex-$CODEX_VERSION"
CLAUDE_BIN="$CLAUDE_DIR/node_modules/.bin/claude"
CODEX_BIN="$CODEX_DIR/node_modules/.bin/codex"

# install DIR SPEC BIN VERSION-REGEX
install_one() {
    local dir="$1" spec="$2" bin="$3" want="$4"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q -- "$want"; then
        return 0
    fi
    mkdir -p "$dir"
    echo "installing $spec into $dir" >&2
    npm install --prefix "$dir" --no-audit --no-fund "$spec" >&2
    if [ ! -x "$bin" ]; then
        echo "install-clis: $bin missing after installing $spec" >&2
        exit 1
    fi
}

install_one "$CLAUDE_DIR" "@anthropic-ai/claude-code@$CLAUDE_VERSION" "$CLAUDE_BIN" "$CLAUDE_VERSION"

# claude.exe is a placeholder stub until the postinstall copies/links the
# native binary over it; if npm skipped the postinstall, do what it does.
CLAUDE_WRAPPER="$CLAUDE_DIR/node_modules/@anthropic-ai/claude-code"
if ! "$CLAUDE_BIN" --version >/dev/null 2>&1; then
    (cd "$CLAUDE_WRAPPER" && node install.cjs) >&2
fi

install_one "$CODEX_DIR" "@openai/codex@$CODEX_VERSION" "$CODEX_BIN" "$CODEX_VERSION"

echo "$CLAUDE_BIN"
echo "$CODEX_BIN"
exit 0
