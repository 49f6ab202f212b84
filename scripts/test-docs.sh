#!/usr/bin/env bash
# Docs that cannot rot: runs docs/quickstart.md's commands against a fresh
# server, checks links between the docs and that docs/api.md matches
# docs/openapi.json, and runs docs/self-hosting.md's operator recipes (the
# systemd unit through `systemd-analyze verify` and its ExecStart, the online
# SQLite backup and restore, migrate, monitoring) (scripts/test-docs.py).
# Needs Rust, Python 3, curl and the sqlite3 shell; installs Debian's
# `sqlite3` and `systemd` (for systemd-analyze) when they are missing.
#   CARGO_TARGET_DIR  cargo's target directory (default target/)
#   SENDPROMPTLY_BIN  a prebuilt server binary (default: built here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [[ ${#missing[@]} -gt 0 ]] && command -v apt-get >/dev/null; then
    if [[ "$(id -u)" == 0 ]]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi
if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    cargo build --locked --quiet --bin sendpromptly
    export SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"
fi
exec "${PYTHON:-python3}" scripts/test-docs.py
