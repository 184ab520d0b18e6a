#!/usr/bin/env bash
# Build the Gemini adapter written in Python into a component, with
# componentize-py (from PyPI, pinned) in a venv under target/:
#
#   adapters/python-gemini/build.sh [OUT]   (default: target/python-gemini/gemini.wasm)
#
# Needs python3 with venv and pip, and the network the first time. The
# output is ~18 MB (CPython inside); it is not committed: `.ci/run` builds it
# and the golden tests load it through the host (IAPEER_PYTHON_ADAPTER).
# Exit 3: the toolchain could not be installed (no venv, no network); any
# other failure is the adapter's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$root/target/python-gemini/gemini.wasm}
version=0.25.1
venv=$root/target/componentize-py-venv
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" \
     || ! "$venv/bin/pip" install -q --disable-pip-version-check "componentize-py==$version"; then
    echo "python-gemini: cannot install componentize-py $version" >&2
    exit 3
  fi
fi
mkdir -p "$(dirname "$out")"
"$venv/bin/componentize-py" -d "$root/wit/since_v0.2" -w runtime-adapter \
  componentize -p "$root/adapters/python-gemini" app -o "$out" >/dev/null
echo "built $out ($(du -h "$out" | cut -f1))"
