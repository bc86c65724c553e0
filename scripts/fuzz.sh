#!/usr/bin/env bash
# Fuzz binfmt-setup's parsers of untrusted input with cargo-fuzz (libFuzzer, nightly).
#
#   scripts/fuzz.sh                 every target, 60 s each
#   scripts/fuzz.sh TARGET [SECS]   one target (SECS defaults to 60)
#   scripts/fuzz.sh all SECS        every target, SECS each
#   scripts/fuzz.sh list            the targets
#
# Installs what it needs (the nightly toolchain, cargo-fuzz). Everything it keeps is under
# target/: the build (target/fuzz-build), the corpus grown from seeds (target/fuzz/corpus)
# and crashing inputs (target/fuzz/artifacts). A crash stops the run with libFuzzer's report
# and the input's path; turn it into a unit test beside the code it broke.
# Runs at nice 19 with one job per target: it shares the machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '== %s\n' "$*" >&2; }

targets() {
    sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^binfmt-setup-fuzz$'
}

ensure_tools() {
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        say "installing the nightly toolchain"
        rustup toolchain install nightly --profile minimal
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

# Seeds: real inputs of each kind, copied fresh so the corpus starts from known-good files.
seed() {
    local target=$1 dir=$2
    mkdir -p "$dir"
    case $target in
        inspect)
            local f
            for f in /bin/ls /usr/bin/qemu-aarch64-static target/fixtures/*; do
                # The first 64 KiB hold every header inspect reads in these files.
                [[ -f $f ]] && head -c 65536 "$f" >"$dir/seed-$(basename "$f")"
            done
            printf '#!/bin/sh -e\n' >"$dir/seed-script"
            printf '#!/usr/bin/env python3\r\n' >"$dir/seed-crlf"
            ;;
        entry)
            printf 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n' >"$dir/seed-magic"
            printf 'disabled\ninterpreter /usr/bin/jexec\nflags: OC\nextension .jar\n' >"$dir/seed-extension"
            printf 'enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n' >"$dir/seed-maskless"
            ;;
        registration)
            head -c 4096 /dev/urandom >"$dir/seed-random"
            ;;
        arch_table)
            cp configs/arches.toml "$dir/seed-arches.toml"
            ;;
        init_config)
            cp configs/binfmt-setup.toml "$dir/seed-binfmt-setup.toml"
            ;;
        oci_json)
            # index.json, then (NUL-separated) the manifest and config it leads to.
            printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}\0{"config":{"digest":"sha256:%s"},"layers":[{"digest":"sha256:%s"}]}\0{"os":"linux","architecture":"arm64"}' \
                "$(printf 'a%.0s' {1..64})" "$(printf 'b%.0s' {1..64})" "$(printf 'c%.0s' {1..64})" >"$dir/seed-index"
            printf '[{"Config":"c.json","Layers":["blobs/sha256/abc"]}]\0{"architecture":"amd64"}' >"$dir/seed-docker-save"
            ;;
        tar_stream)
            local f
            for f in target/rootfs/*.tar* target/fixtures/*.tar*; do
                [[ -f $f ]] && head -c 65536 "$f" >"$dir/seed-$(basename "$f")"
            done
            tar -C tests/fixtures-src -cf "$dir/seed-plain.tar" . 2>/dev/null || true
            ;;
        *) ;;
    esac
}

run_one() {
    local target=$1 secs=$2
    local corpus=target/fuzz/corpus/$target artifacts=target/fuzz/artifacts/$target
    seed "$target" "$corpus"
    mkdir -p "$artifacts"
    say "fuzzing $target for $secs s (corpus $corpus)"
    nice -n 19 cargo +nightly fuzz run --fuzz-dir fuzz --target-dir target/fuzz-build \
        "$target" "$corpus" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$artifacts/" -print_final_stats=1
}

main() {
    local what=${1:-all} secs=${2:-60}
    if [[ $what == list ]]; then
        targets
        return
    fi
    if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs == 0)); then
        echo "usage: $0 [TARGET|all|list] [SECONDS]" >&2
        exit 2
    fi
    ensure_tools
    if [[ $what == all ]]; then
        local t
        for t in $(targets); do
            run_one "$t" "$secs"
        done
    elif targets | grep -qx "$what"; then
        run_one "$what" "$secs"
    else
        echo "unknown target '$what'; targets: $(targets | tr '\n' ' ')" >&2
        exit 2
    fi
}

main "$@"
