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

# The arm64 build the arm64-host simulation runs under QEMU, once, without LTO, in a target
# directory of its own (the test finds it there, and would build it the same way).
step "arm64 build (scripts/build-static.sh --target aarch64 --profile quick)"
start=$SECONDS
CARGO_TARGET_DIR=target/cross scripts/build-static.sh --target aarch64 --profile quick
echo "arm64 build: $((SECONDS - start)) s" >&2

# Built before the tests, which find it up to date: a static build inside the test run would
# compete for the CPU with tests whose probes have time limits.
step "image (scripts/image.sh)"
scripts/image.sh --tag ci --profile quick >/dev/null

step "cargo test"
cargo test --locked
