#!/usr/bin/env bash
# Docs that cannot rot: runs docs/quickstart.md's commands against a fresh
# server, checks links between the docs and that docs/api.md matches
# docs/openapi.json (scripts/test-docs.py). Needs Rust, Python 3 and curl.
#   CARGO_TARGET_DIR  cargo's target directory (default target/)
#   SENDPROMPTLY_BIN  a prebuilt server binary (default: built here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    cargo build --locked --quiet --bin sendpromptly
    export SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"
fi
exec "${PYTHON:-python3}" scripts/test-docs.py
