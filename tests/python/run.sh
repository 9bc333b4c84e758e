#!/usr/bin/env bash
# End-to-end tests of the real batchgate binary with the official `openai`
# Python SDK and the `litellm` SDK.
#
#   bash tests/python/run.sh [pytest args...]
#
# Needs only a Rust toolchain and python3 (3.11) with venv/pip; installs the
# pinned Python packages into ${BATCHGATE_VENV:-target/pyvenv} (skipped on
# reruns while requirements.txt and the interpreter are unchanged), builds the
# debug binaries and runs pytest. Safe to run repeatedly, from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="${BATCHGATE_VENV:-target/pyvenv}"
REQ="tests/python/requirements.txt"
STAMP="$VENV/.batchgate-requirements.stamp"

if [ ! -x "$VENV/bin/python" ]; then
    echo "run.sh: creating virtualenv $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

want="$(sha256sum "$REQ" | cut -d' ' -f1) $("$VPY" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "run.sh: installing $REQ into $VENV" >&2
    rm -f "$STAMP"
    "$VPY" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$want" >"$STAMP"
fi

# `cargo xtask ci` only wants the virtualenv (for moto's S3 server) first.
if [ -n "${BATCHGATE_SETUP_ONLY:-}" ]; then
    exit 0
fi

cargo build -q -p batchgate -p batchgate-mock-vllm

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    "$VPY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export BATCHGATE_BIN="${BATCHGATE_BIN:-$TARGET_DIR/debug/batchgate}"
export MOCK_VLLM_BIN="${MOCK_VLLM_BIN:-$TARGET_DIR/debug/mock-vllm}"

# litellm fetches its model price map from the internet at import time unless
# told to use the copy it ships; keep every test request on loopback.
export LITELLM_LOCAL_MODEL_COST_MAP=True

exec "$VPY" -m pytest -q tests/python "$@"
