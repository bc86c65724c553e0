#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, format, lints, unit and integration
# tests. Integration tests register real handlers, but only in private binfmt_misc instances
# inside user namespaces; the host's /proc/sys/fs/binfmt_misc is never written.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*" >&2; }

step "system packages"
scripts/setup.sh --no-build

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "shellcheck"
shellcheck scripts/*.sh .ci/run

step "cargo test"
cargo test --locked
