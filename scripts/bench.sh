#!/usr/bin/env bash
# Benchmarks for binfmt-setup. Prints results only; it never fails on timings.
#
#   scripts/bench.sh              run every benchmark
#   scripts/bench.sh inspect      run the named ones
#   BENCH_RUNS=3 scripts/bench.sh change the number of timed runs (default 7)
#   BENCH_BIN=PATH scripts/bench.sh  measure another build (say, the commit before a change)
#
# To add a benchmark, define a function named bench_NAME; main finds it by that prefix.
set -euo pipefail

# The C locale makes `sort` (and so the file selection) identical on every machine,
# and keeps the decimal point a '.' for printf and awk.
export LC_ALL=C

cd "$(dirname "$0")/.."

BIN=$(realpath -m "${BENCH_BIN:-target/release/binfmt-setup}")
readonly BIN
readonly BENCH_DIR=target/bench
RUNS=${BENCH_RUNS:-7}

# Temp files go in this list so one trap removes them however the script ends; so do the
# servers a benchmark starts (their pids).
TEMP_FILES=()
SERVER_PIDS=()
cleanup() {
    if ((${#TEMP_FILES[@]} > 0)); then
        rm -f -- "${TEMP_FILES[@]}"
    fi
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        { kill "$pid" && wait "$pid"; } 2>/dev/null || true
    done
    return 0
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# make_temp VAR PREFIX: create a temp file and store its path in VAR. It must not be
# called as $(make_temp …): the subshell would record the file in its own copy of TEMP_FILES.
make_temp() {
    mkdir -p "$BENCH_DIR"
    local f
    f=$(mktemp "$BENCH_DIR/$2.XXXXXX")
    TEMP_FILES+=("$f")
    printf -v "$1" '%s' "$f"
}

# Build at most once, however many benchmarks need the binary.
BUILT=0
build_release() {
    ((BUILT)) && return 0
    if [[ -n ${BENCH_BIN:-} ]]; then
        log "measuring $BIN (BENCH_BIN), not building"
        BUILT=1
        return 0
    fi
    log "building $BIN"
    cargo build --release --quiet
    BUILT=1
}

# Run a command with its output and exit status thrown away: `inspect` exits 1 or 2
# when it has findings, which is expected here and must not stop the script.
quietly() {
    "$@" >/dev/null 2>&1 || true
}

# Wall clock in nanoseconds. $EPOCHREALTIME (bash 5) costs no fork, which matters when
# the command being timed takes only a few milliseconds; `date` is the fallback.
now_ns() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        printf '%s000\n' "${EPOCHREALTIME//[!0-9]/}"
    else
        date +%s%N
    fi
}

# Median of numbers on stdin, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# time_loop CMD...: one warm-up run, then RUNS timed runs; prints the median in ms.
# Used when hyperfine is missing.
time_loop() {
    local i start end
    quietly "$@"
    for ((i = 0; i < RUNS; i++)); do
        start=$(now_ns)
        quietly "$@"
        end=$(now_ns)
        printf '%s\n' "$((end - start))"
    done | median | awk '{ printf "%.3f\n", $1 / 1e6 }'
}

# Print the sorted readable regular files below the given directories that match the
# given find tests, skipping symlinks (-type f does not follow them), empty files and
# paths with characters that would need shell quoting, so the list can be used as words.
list_files() {
    local -a dirs=()
    while (($# > 0)) && [[ $1 != -- ]]; do
        [[ -d $1 ]] && dirs+=("$1")
        shift
    done
    (($# > 0)) && shift
    ((${#dirs[@]} > 0)) || return 0
    find "${dirs[@]}" -type f -readable -size +0c "$@" 2>/dev/null |
        grep -E '^[A-Za-z0-9._+/@:,=-]+$' | sort || true
}

# take N: N lines spread evenly over stdin (not just the first N, which would all start
# with the same letters); all of them when there are fewer.
take() {
    awk -v want="$1" '{ line[NR] = $0 }
        END {
            if (NR <= want) { for (i = 1; i <= NR; i++) print line[i]; exit }
            for (i = 0; i < want; i++) print line[int(i * NR / want) + 1]
        }'
}

# The files a user is likely to inspect: programs (ELF and scripts mixed, as they come in
# /usr/bin), helper programs, shared libraries and stand-alone scripts.
collect_inspect_files() {
    local want=$1
    {
        list_files /usr/bin | take 450
        list_files /usr/libexec -- -perm /111 | take 50
        list_files /usr/lib -- \( -name '*.so' -o -name '*.so.[0-9]*' \) | take 400
        list_files /usr/lib -- -perm /111 \( -name '*.sh' -o -name '*.py' -o -name '*.pl' \) | take 100
    } | awk -v want="$want" '{ line[NR] = $0 }
        END {
            # Repeat the list when a small system has fewer files than wanted.
            for (i = 0; NR > 0 && i < want; i++) print line[i % NR + 1]
        }'
}

bench_inspect() {
    local count=1000

    if ! command -v file >/dev/null 2>&1; then
        log "error: file(1) is not installed; run scripts/setup.sh, which installs it"
        exit 3
    fi
    build_release

    local list
    make_temp list inspect-files
    collect_inspect_files "$count" >"$list"
    local -a files
    mapfile -t files <"$list"
    if ((${#files[@]} != count)); then
        log "error: found no files to inspect under /usr/bin, /usr/lib or /usr/libexec"
        exit 1
    fi

    local ours_ms file_ms
    # hyperfine gets each command as one argument, and Linux caps a single argument at
    # 128 KiB; with very long paths use the plain loop instead.
    if command -v hyperfine >/dev/null 2>&1 && (($(wc -c <"$list") < 120000)); then
        local json
        make_temp json inspect-json
        log "timing with hyperfine ($RUNS runs each)"
        # --shell=none: no shell start-up inside the measurement; the paths need no
        # quoting. --ignore-failure: inspect's exit status reports findings.
        hyperfine --shell=none --ignore-failure --warmup 1 --runs "$RUNS" \
            --export-json "$json" \
            --command-name 'binfmt-setup inspect --json' --command-name 'file' \
            "$BIN inspect --json ${files[*]}" "file ${files[*]}" >&2
        {
            read -r ours_ms
            read -r file_ms
        } < <(python3 - "$json" <<'PY'
import json, statistics, sys
with open(sys.argv[1]) as f:
    for result in json.load(f)["results"]:
        print(f"{statistics.median(result['times']) * 1000:.3f}")
PY
        )
    else
        log "timing with a shell loop ($RUNS runs each; install hyperfine for better numbers)"
        ours_ms=$(time_loop "$BIN" inspect --json "${files[@]}")
        file_ms=$(time_loop file "${files[@]}")
    fi

    awk -v n="$count" -v runs="$RUNS" -v ours="$ours_ms" -v file="$file_ms" 'BEGIN {
        ratio = ours > 0 ? file / ours : 0
        printf "inspect %d files (median of %d runs)\n", n, runs
        printf "  %-29s %8.1f ms\n", "binfmt-setup inspect --json", ours
        printf "  %-29s %8.1f ms\n", "file", file
        printf "  %-29s %8.1fx   (goal: >= 5x)\n", "ratio file / binfmt-setup", ratio
        printf "BENCH inspect_vs_file ratio=%.1f ours_ms=%.1f file_ms=%.1f\n", ratio, ours, file
    }'
}

# medians_ms JSON: the median of each command in a hyperfine --export-json file, in ms, one
# per line, in the order the commands were given.
medians_ms() {
    python3 - "$1" <<'PY'
import json, statistics, sys
with open(sys.argv[1]) as f:
    for result in json.load(f)["results"]:
        print(f"{statistics.median(result['times']) * 1000:.3f}")
PY
}

# Each timed run registers every handler in a fresh private binfmt_misc (a new user and
# mount namespace, as the tests use), so no run finds the previous one's entries. The
# namespace set-up is the same for all the tools and is part of every measurement.
# binfmt-setup is measured with its proofs kept from an earlier run (the warm-up run makes
# them; machine::proofs) and with them forgotten before every run (removed by hyperfine's
# --prepare, outside the measurement), so that the P probe's QEMU start is in each run.
bench_install() {
    local systemd_binfmt=/lib/systemd/systemd-binfmt
    local update_binfmts=target/peers/root/usr/sbin/update-binfmts
    for tool in "$systemd_binfmt" "$update_binfmts" hyperfine; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "error: $tool is missing; run scripts/setup.sh, which installs or unpacks it"
            exit 3
        fi
    done
    build_release

    local work=$PWD/$BENCH_DIR/install
    rm -rf "$work"
    mkdir -p "$work/admin"
    # The peers load exactly the entries `install --arch all` makes: export writes them.
    "$BIN" -q export --format systemd --output "$work/binfmt.d" >/dev/null
    "$BIN" -q export --format debian --output "$work/binfmts" >/dev/null
    local count
    count=$(find "$work/binfmt.d" -name '*.conf' | wc -l)
    # update-binfmts --enable registers what an earlier --import put in its admin directory.
    unshare --user --map-root-user --mount sh -c \
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
         $update_binfmts --admindir $work/admin --importdir $work/binfmts --import"

    # fresh.sh runs one tool in a new instance and fails unless it left every handler there,
    # so a tool that silently did nothing cannot look fast.
    cat >"$work/fresh.sh" <<EOF
#!/bin/sh
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
"\$@" >/dev/null || exit 1
test "\$(ls /proc/sys/fs/binfmt_misc | grep -c '^qemu-')" -eq $count
EOF
    chmod +x "$work/fresh.sh"
    local fresh="unshare --user --map-root-user --mount $work/fresh.sh"
    # Where the proofs are kept: root's (the namespace's root is root here), or the user's.
    local proofs=/run/binfmt-setup
    ((EUID == 0)) || proofs=${XDG_RUNTIME_DIR:-/nonexistent}/binfmt-setup
    local -a confs
    mapfile -t confs < <(find "$work/binfmt.d" -name '*.conf' | sort)
    local json
    make_temp json install-json
    log "load before: $(cat /proc/loadavg)"
    log "timing with hyperfine ($RUNS runs each, $count handlers each run)"
    hyperfine --shell=none --warmup 1 --runs "$RUNS" --export-json "$json" \
        --prepare true --prepare "rm -rf $proofs" --prepare true --prepare true --prepare true \
        --command-name 'binfmt-setup install --arch all' \
        --command-name '... proofs forgotten before each run' \
        --command-name 'binfmt-setup install --arch all --no-preserve-argv0' \
        --command-name 'systemd-binfmt on the binfmt.d files' \
        --command-name 'update-binfmts --enable' \
        "$fresh $BIN -q install --arch all" \
        "$fresh $BIN -q install --arch all" \
        "$fresh $BIN -q install --arch all --no-preserve-argv0" \
        "$fresh $systemd_binfmt ${confs[*]}" \
        "$fresh $update_binfmts --admindir $work/admin --importdir $work/binfmts --enable" >&2
    log "load after: $(cat /proc/loadavg)"
    local ours cold nop systemd debian
    {
        read -r ours
        read -r cold
        read -r nop
        read -r systemd
        read -r debian
    } < <(medians_ms "$json")
    awk -v n="$count" -v runs="$RUNS" -v ours="$ours" -v cold="$cold" -v nop="$nop" -v sd="$systemd" -v deb="$debian" 'BEGIN {
        printf "install %d handlers into a fresh binfmt_misc (median of %d runs; each includes\n", n, runs
        printf "the same new namespace and mount)\n"
        printf "  %-44s %8.1f ms\n", "binfmt-setup install --arch all (proofs kept)", ours
        printf "  %-44s %8.1f ms\n", "  ... proofs forgotten before each run", cold
        printf "  %-44s %8.1f ms\n", "  ... --no-preserve-argv0 (no P proof)", nop
        printf "  %-44s %8.1f ms\n", "systemd-binfmt (binfmt.d files)", sd
        printf "  %-44s %8.1f ms\n", "update-binfmts --enable", deb
        printf "  %-44s %8.2fx   (goal: <= 1.0x)\n", "ratio binfmt-setup / systemd-binfmt", ours / sd
        printf "  %-44s %8.2fx\n", "ratio with the proofs made in each run", cold / sd
        printf "  %-44s %8.2fx\n", "ratio binfmt-setup / update-binfmts", ours / deb
        printf "BENCH install_vs_systemd ratio=%.2f cold_ratio=%.2f ours_ms=%.1f cold_ms=%.1f no_p_ms=%.1f systemd_ms=%.1f update_binfmts_ms=%.1f\n", ours / sd, cold / sd, ours, cold, nop, sd, deb
    }'
}

# test against Debian's arch-test, both on the same registrations (install --arch all) in one
# private binfmt_misc: binfmt-setup on the architectures arch-test checks (its names, which
# --arch takes; armel and armhf are arm), and on all of them. hyperfine runs inside that
# namespace, in BENCH_TEST_ROUNDS rounds (default 5) of RUNS runs of each command, so that a
# change in a shared machine's load falls on every command alike; medians are of all runs.
bench_test() {
    local peer=$PWD/target/peers/root rounds=${BENCH_TEST_ROUNDS:-5}
    if [[ ! -x $peer/usr/bin/arch-test ]] || ! command -v hyperfine >/dev/null 2>&1; then
        log "error: arch-test or hyperfine is missing; run scripts/setup.sh, which unpacks or installs them"
        exit 3
    fi
    build_release
    local work=$PWD/$BENCH_DIR/test
    rm -rf "$work"
    mkdir -p "$work"
    # arch-test looks for its helpers in /usr/lib/arch-test; point it at the unpacked ones.
    sed "s|^HELPERS=.*|HELPERS=$peer/usr/lib/arch-test/|" "$peer/usr/bin/arch-test" >"$work/arch-test"
    chmod +x "$work/arch-test"
    cat >"$work/inside.sh" <<EOF
#!/bin/sh
set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
$BIN -q install --arch all
found=\$($work/arch-test | tr '\n' ' ')
echo "arch-test finds: \$found" >&2
same=\$(echo \$found | tr ' ' ',')
echo "\$same" >$work/same
for round in \$(seq $rounds); do
    hyperfine --warmup 1 --runs $RUNS --export-json $work/round-\$round.json \\
        --command-name 'binfmt-setup test (arch-test architectures)' \\
        --command-name 'binfmt-setup test --arch all' --command-name 'arch-test' \\
        "$BIN test --arch \$same" '$BIN test --arch all' '$work/arch-test' >&2
done
EOF
    chmod +x "$work/inside.sh"
    log "load before: $(cat /proc/loadavg)"
    log "timing with hyperfine ($rounds rounds of $RUNS runs each) inside a private binfmt_misc"
    unshare --user --map-root-user --mount "$work/inside.sh"
    log "load after: $(cat /proc/loadavg)"
    local same all peer_ms arches
    {
        read -r same
        read -r all
        read -r peer_ms
    } < <(python3 - "$work" <<'PY'
import glob, json, statistics, sys
times = {}
for path in sorted(glob.glob(f"{sys.argv[1]}/round-*.json")):
    for i, result in enumerate(json.load(open(path))["results"]):
        times.setdefault(i, []).extend(result["times"])
for i in sorted(times):
    print(f"{statistics.median(times[i]) * 1000:.3f}")
PY
    )
    arches=$(tr ',' '\n' <"$work/same" | grep -c .)
    awk -v runs="$((RUNS * rounds))" -v n="$arches" -v same="$same" -v all="$all" -v at="$peer_ms" 'BEGIN {
        printf "test against arch-test on the same registrations (median of %d runs in rounds)\n", runs
        printf "  %-46s %8.1f ms\n", sprintf("binfmt-setup test, arch-test'"'"'s %d names", n), same
        printf "  %-46s %8.1f ms\n", "binfmt-setup test --arch all", all
        printf "  %-46s %8.1f ms\n", "arch-test", at
        printf "  %-46s %8.2fx   (goal: <= 0.3x)\n", "ratio on the same architectures", same / at
        printf "  %-46s %8.2fx\n", "ratio with --arch all", all / at
        printf "BENCH test_vs_arch_test ratio=%.2f all_ratio=%.2f ours_ms=%.1f all_ms=%.1f arch_test_ms=%.1f\n", same / at, all / at, same, all, at
    }'
}

# peak_rss_mb CMD...: the command's peak resident memory in MiB (GNU time's maximum RSS,
# which covers the children it waited for), its output thrown away.
peak_rss_mb() {
    local out
    make_temp out rss
    /usr/bin/time -f '%M' -o "$out" "$@" >/dev/null 2>&1 || true
    tail -n 1 "$out" | awk '{ printf "%.1f\n", $1 / 1024 }'
}

# scan a whole tree (/usr, warm cache) against scanelf -R and file(1) over every regular
# file; time (median, hyperfine), peak memory, and whether the same ELF files are found.
bench_scan() {
    local tree=${BENCH_SCAN_TREE:-/usr}
    local file_runs=${BENCH_SCAN_FILE_RUNS:-2}
    local tool
    for tool in scanelf file hyperfine /usr/bin/time; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "error: $tool is not installed; run scripts/setup.sh, which installs it"
            exit 3
        fi
    done
    build_release

    # file(1) is single-threaded; give it every core, as scan uses them all.
    local jobs
    jobs=$(nproc)
    local file_cmd="find $tree -type f -print0 | xargs -0 -P $jobs -n 1024 file"

    # The first runs warm the page cache and count what each tool calls ELF.
    local report file_out
    make_temp report scan-json
    make_temp file_out scan-file
    log "warming the cache and counting ELF files under $tree"
    "$BIN" scan --json "$tree" >"$report" 2>/dev/null || true
    local ours_elf scanelf_elf file_elf
    ours_elf=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["elf_files"])' "$report")
    scanelf_elf=$(scanelf -R "$tree" 2>/dev/null | grep -c '^ET_' || true)
    # Line-buffered, so the parallel file processes cannot interleave parts of lines.
    bash -c "find $tree -type f -print0 | xargs -0 -P $jobs -n 1024 stdbuf -oL file" \
        >"$file_out" 2>/dev/null || true
    file_elf=$(grep -cE ':[[:space:]]+(set[ug]id[, ]+)*ELF ' "$file_out" || true)

    local json json_file ours_ms scanelf_ms file_ms
    make_temp json scan-hyperfine
    make_temp json_file scan-hyperfine-file
    log "timing with hyperfine ($RUNS runs; file: $file_runs)"
    hyperfine --ignore-failure --warmup 1 --runs "$RUNS" --export-json "$json" \
        --command-name 'binfmt-setup scan' --command-name 'scanelf -R' \
        "$BIN scan --json $tree" "scanelf -R $tree" >&2
    hyperfine --ignore-failure --runs "$file_runs" --export-json "$json_file" \
        --command-name "file (xargs -P $jobs)" "$file_cmd" >&2
    {
        read -r ours_ms
        read -r scanelf_ms
    } < <(medians_ms "$json")
    file_ms=$(medians_ms "$json_file")

    local ours_mb scanelf_mb file_mb
    ours_mb=$(peak_rss_mb "$BIN" scan --json "$tree")
    scanelf_mb=$(peak_rss_mb scanelf -R "$tree")
    file_mb=$(peak_rss_mb bash -c "$file_cmd")

    awk -v tree="$tree" -v runs="$RUNS" -v fruns="$file_runs" \
        -v ours="$ours_ms" -v se="$scanelf_ms" -v fi="$file_ms" \
        -v omb="$ours_mb" -v smb="$scanelf_mb" -v fmb="$file_mb" \
        -v oe="$ours_elf" -v se_elf="$scanelf_elf" -v fe="$file_elf" 'BEGIN {
        printf "scan %s, warm cache (median of %d runs; file %d)\n", tree, runs, fruns
        printf "  %-22s %9.1f ms  %7.1f MiB peak  %6d ELF files\n", "binfmt-setup scan", ours, omb, oe
        printf "  %-22s %9.1f ms  %7.1f MiB peak  %6d ELF files\n", "scanelf -R", se, smb, se_elf
        printf "  %-22s %9.1f ms  %7.1f MiB peak  %6d ELF files\n", "file", fi, fmb, fe
        printf "  time / scanelf: %.2fx (goal: <= 0.5x)   time / file: %.3fx   peak: %.1f MiB (goal: < 50)\n",
            ours / se, ours / fi, omb
        printf "  ELF files, scan minus scanelf: %+d (goal: 0); scan minus file: %+d\n", oe - se_elf, oe - fe
        printf "BENCH scan_vs_scanelf ratio=%.2f ours_ms=%.1f scanelf_ms=%.1f file_ms=%.1f ours_mb=%.1f elf_diff=%d\n",
            ours / se, ours, se, fi, omb, oe - se_elf
    }'
}

# scan an image of about 1 GB of blobs straight from a registry (Debian's docker-registry on
# loopback, TLS and a login, as the tests run it) against fetching the same blobs with
# `skopeo copy` to a local directory: both pull every layer and check its digest; scan also
# decompresses each layer and reads every file's header. The image (4 layers, each real
# programs from /usr/bin plus incompressible data) is built once into target/bench/registry.
bench_registry() {
    local tool
    for tool in docker-registry skopeo umoci openssl htpasswd hyperfine python3; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "error: $tool is not installed; run scripts/setup.sh, which installs it"
            exit 3
        fi
    done
    build_release
    local work=$PWD/$BENCH_DIR/registry
    local layers=${BENCH_REGISTRY_LAYERS:-4}
    local stamp="$work/stamp-v2-$layers"
    if [[ ! -e $stamp ]]; then
        log "building a ~1 GB image of $layers layers (once) in $work"
        rm -rf "$work"
        mkdir -p "$work"
        umoci init --layout "$work/oci"
        umoci new --image "$work/oci:big"
        umoci config --image "$work/oci:big" --os linux --architecture amd64
        local i tree=$work/tree
        for ((i = 0; i < layers; i++)); do
            rm -rf "$tree"
            mkdir -p "$tree/usr/bin$i" "$tree/data"
            # About 110 MB of real programs (55 MB compressed), and incompressible data to make
            # ~255 MB a layer.
            find /usr/bin -maxdepth 1 -type f -size +100k -size -20M | sort | head -n 60 |
                xargs -r cp -t "$tree/usr/bin$i" 2>/dev/null || true
            head -c $((190 * 1000 * 1000)) /dev/urandom >"$tree/data/blob$i"
            umoci insert --image "$work/oci:big" "$tree" /
        done
        rm -rf "$tree"
        touch "$stamp"
    fi

    # A registry of our own on a free loopback port, TLS from a throw-away CA, one login.
    local reg=$work/server port
    rm -rf "$reg" "$work/data"
    mkdir -p "$reg/certs"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca -keyout "$reg/ca.key" \
        -out "$reg/certs/ca.crt" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$reg/server.key" \
        -out "$reg/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$reg/ext.cnf"
    openssl x509 -req -in "$reg/server.csr" -CA "$reg/certs/ca.crt" -CAkey "$reg/ca.key" \
        -CAcreateserial -days 1 -extfile "$reg/ext.cnf" -out "$reg/server.crt" 2>/dev/null
    htpasswd -Bbn bench bench >"$reg/htpasswd"
    printf '%s\n' 'version: 0.1' 'log:' '  level: error' 'storage:' '  filesystem:' \
        "    rootdirectory: $work/data" 'http:' "  addr: 127.0.0.1:$port" '  tls:' \
        "    certificate: $reg/server.crt" "    key: $reg/server.key" 'auth:' '  htpasswd:' \
        '    realm: bench' "    path: $reg/htpasswd" >"$reg/config.yml"
    docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
    SERVER_PIDS+=($!)
    local n
    for ((n = 0; n < 200; n++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    local image=docker://127.0.0.1:$port/big:1
    local auth="--creds bench:bench --cert-dir $reg/certs"
    skopeo copy -q --dest-creds bench:bench --dest-cert-dir "$reg/certs" "oci:$work/oci:big" "$image"
    local bytes
    bytes=$(skopeo inspect --raw --creds bench:bench --cert-dir "$reg/certs" "$image" |
        python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')

    local json
    make_temp json registry-json
    log "timing with hyperfine ($RUNS runs each); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    hyperfine --ignore-failure --warmup 1 --runs "$RUNS" --export-json "$json" \
        --prepare "rm -rf $work/copy" \
        --command-name 'binfmt-setup scan docker://' --command-name 'skopeo copy to dir:' \
        "$BIN -q scan $auth $image" \
        "skopeo copy -q --src-creds bench:bench --src-cert-dir $reg/certs $image dir:$work/copy" >&2
    local ours skopeo_ms
    {
        read -r ours
        read -r skopeo_ms
    } < <(medians_ms "$json")
    awk -v runs="$RUNS" -v ours="$ours" -v sk="$skopeo_ms" -v mb="$((bytes / 1000000))" \
        -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        printf "scan an image of %d MB of blobs from a registry on loopback (median of %d runs, load %s)\n", mb, runs, load
        printf "  %-30s %9.1f ms\n", "binfmt-setup scan docker://", ours
        printf "  %-30s %9.1f ms\n", "skopeo copy to dir:", sk
        printf "  %-30s %9.2fx   (goal: <= 1.2x)\n", "ratio scan / skopeo copy", ours / sk
        printf "BENCH registry_vs_skopeo ratio=%.2f ours_ms=%.1f skopeo_ms=%.1f mb=%d\n", ours / sk, ours, sk, mb
    }'
    rm -rf "$work/copy"
}

# The compressed-image corpus, built once into $CORPUS and reused while its stamp (the trees
# it was made from) is unchanged: a tar of BENCH_ARCHIVE_TREE (default /usr) plain, gzip -6
# and zstd -3, and an OCI image (umoci) of 4 equal gzip layers, each BENCH_LAYER_TREE
# (default /usr/share) under /l1 … /l4. Takes several minutes the first time.
readonly CORPUS=$BENCH_DIR/corpus
build_corpus() {
    local tree=${BENCH_ARCHIVE_TREE:-/usr} layer_tree=${BENCH_LAYER_TREE:-/usr/share}
    local stamp="tree=$tree layers=$layer_tree v1"
    if [[ -f $CORPUS/stamp && "$(cat "$CORPUS/stamp")" == "$stamp" ]]; then
        return 0
    fi
    local tool
    for tool in gzip zstd umoci tar python3; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "error: $tool is not installed; run scripts/setup.sh, which installs it"
            exit 3
        fi
    done
    rm -rf "$CORPUS"
    mkdir -p "$CORPUS"
    log "building the corpus in $CORPUS from $tree and $layer_tree (once; several minutes)"
    tar -C "$(dirname "$tree")" --sort=name --numeric-owner -cf "$CORPUS/tree.tar" \
        "$(basename "$tree")" 2>/dev/null || true
    gzip -6 -c "$CORPUS/tree.tar" >"$CORPUS/tree.tar.gz"
    zstd -q -T1 -3 -c "$CORPUS/tree.tar" >"$CORPUS/tree.tar.zst"
    local image=$CORPUS/layers4 i
    umoci init --layout "$image"
    umoci new --image "$image:bench"
    for i in 1 2 3 4; do
        tar -C "$layer_tree" --sort=name --numeric-owner --transform "s,^\\.,l$i," \
            -cf "$CORPUS/layer.tar" . 2>/dev/null || true
        umoci raw add-layer --image "$image:bench" "$CORPUS/layer.tar"
    done
    rm -f "$CORPUS/layer.tar"
    printf '%s\n' "$stamp" >"$CORPUS/stamp"
}

# The corpus image packed in a tar, as an OCI archive (docker save writes one like it).
corpus_image_tar() {
    if [[ ! -f $CORPUS/layers4.tar ]]; then
        tar -C "$CORPUS/layers4" -cf "$CORPUS/layers4.tar.tmp" .
        mv "$CORPUS/layers4.tar.tmp" "$CORPUS/layers4.tar"
    fi
}

# The blobs of the corpus image's layers, lowest first, one path a line.
corpus_layers() {
    python3 - "$CORPUS/layers4" <<'PY'
import json, sys
root = sys.argv[1]
def blob(d):
    alg, hexdigest = d.split(":")
    return f"{root}/blobs/{alg}/{hexdigest}"
index = json.load(open(f"{root}/index.json"))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
for layer in manifest["layers"]:
    print(blob(layer["digest"]))
PY
}

# interleaved RUNS NAME CMD NAME CMD ...: RUNS rounds, each running every command once in
# turn (so a change in the machine's load falls on all of them alike), the page cache warmed
# with the files named in $WARM before each; prints each command's median in ms, one a line.
interleaved() {
    local runs=$1 i j start end
    shift
    local -a names=() cmds=()
    while (($# > 0)); do
        names+=("$1")
        cmds+=("$2")
        shift 2
    done
    local times
    make_temp times interleaved
    for ((i = 0; i < runs; i++)); do
        for j in "${!cmds[@]}"; do
            # shellcheck disable=SC2086 # WARM is a list of paths without spaces
            cat $WARM >/dev/null
            start=$(now_ns)
            bash -c "${cmds[$j]}" >/dev/null 2>&1 || true
            end=$(now_ns)
            printf '%s %s\n' "$j" "$((end - start))" >>"$times"
            log "  ${names[$j]}: $(((end - start) / 1000000)) ms"
        done
    done
    for j in "${!cmds[@]}"; do
        awk -v j="$j" '$1 == j { print $2 }' "$times" | median | awk '{ printf "%.1f\n", $1 / 1e6 }'
    done
}

# scan of compressed images against the decompressor alone on the same file: a tar.zst
# against zstd -dc, a tar.gz against gzip -dc, a plain tar against cat, and the 4-layer OCI
# image, as a layout and packed in a tar, against gzip -dc over its layers one after another. Runs interleaved, warm cache;
# BENCH_ARCHIVE_RUNS rounds (default 3). Peak memory of each scan from GNU time.
bench_archives() {
    local runs=${BENCH_ARCHIVE_RUNS:-3} tool
    for tool in zstd gzip /usr/bin/time; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "error: $tool is not installed; run scripts/setup.sh, which installs it"
            exit 3
        fi
    done
    build_release
    build_corpus
    corpus_image_tar
    local bin=$BIN c=$CORPUS
    local -a blobs
    mapfile -t blobs < <(corpus_layers)
    log "load before: $(cat /proc/loadavg)"
    local zs zd gs gd ps pc os od as ad
    log "tar.zst ($runs rounds)"
    { read -r zs; read -r zd; } < <(WARM="$c/tree.tar.zst" interleaved "$runs" \
        scan "$bin scan --json $c/tree.tar.zst" 'zstd -dc' "zstd -dc $c/tree.tar.zst")
    log "tar.gz ($runs rounds)"
    { read -r gs; read -r gd; } < <(WARM="$c/tree.tar.gz" interleaved "$runs" \
        scan "$bin scan --json $c/tree.tar.gz" 'gzip -dc' "gzip -dc $c/tree.tar.gz")
    log "plain tar ($runs rounds)"
    { read -r ps; read -r pc; } < <(WARM="$c/tree.tar" interleaved "$runs" \
        scan "$bin scan --json $c/tree.tar" cat "cat $c/tree.tar")
    log "OCI image, 4 gzip layers ($runs rounds)"
    { read -r os; read -r od; } < <(WARM="${blobs[*]}" interleaved "$runs" \
        scan "$bin scan --json $c/layers4" 'gzip -dc, layer after layer' "gzip -dc ${blobs[*]}")
    log "the same image packed in a tar ($runs rounds)"
    { read -r as; read -r ad; } < <(WARM="$c/layers4.tar" interleaved "$runs" \
        scan "$bin scan --json $c/layers4.tar" 'gzip -dc, layer after layer' "gzip -dc ${blobs[*]}")
    log "load after: $(cat /proc/loadavg)"
    local zm gm pm om am
    am=$(peak_rss_mb "$bin" scan --json "$c/layers4.tar")
    zm=$(peak_rss_mb "$bin" scan --json "$c/tree.tar.zst")
    gm=$(peak_rss_mb "$bin" scan --json "$c/tree.tar.gz")
    pm=$(peak_rss_mb "$bin" scan --json "$c/tree.tar")
    om=$(peak_rss_mb "$bin" scan --json "$c/layers4")
    awk -v runs="$runs" -v cores="$(nproc)" -v size="$(stat -c %s "$c/tree.tar")" \
        -v zs="$zs" -v zd="$zd" -v gs="$gs" -v gd="$gd" -v ps="$ps" -v pc="$pc" \
        -v os="$os" -v od="$od" -v as="$as" -v ad="$ad" \
        -v zm="$zm" -v gm="$gm" -v pm="$pm" -v om="$om" -v am="$am" 'BEGIN {
        printf "scan compressed images against decompression alone (median of %d interleaved rounds, %d cores,\n", runs, cores
        printf "warm cache; the tar is %.1f GB)\n", size / 1e9
        printf "  %-34s %9.1f ms  %6.1f MiB peak\n", "scan tar.zst", zs, zm
        printf "  %-34s %9.1f ms\n", "zstd -dc", zd
        printf "  %-34s %9.2fx   (goal: <= 1.1x)\n", "ratio scan / zstd -dc", zs / zd
        printf "  %-34s %9.1f ms  %6.1f MiB peak\n", "scan tar.gz", gs, gm
        printf "  %-34s %9.1f ms\n", "gzip -dc", gd
        printf "  %-34s %9.2fx   (goal: <= 1.1x)\n", "ratio scan / gzip -dc", gs / gd
        printf "  %-34s %9.1f ms  %6.1f MiB peak\n", "scan tar (plain)", ps, pm
        printf "  %-34s %9.1f ms\n", "cat", pc
        printf "  %-34s %9.2fx\n", "ratio scan / cat", ps / pc
        printf "  %-34s %9.1f ms  %6.1f MiB peak\n", "scan OCI image, 4 gzip layers", os, om
        printf "  %-34s %9.1f ms\n", "gzip -dc, layer after layer", od
        printf "  %-34s %9.2fx   (goal: <= 0.35x)\n", "ratio scan / serial gzip -dc", os / od
        printf "  %-34s %9.1f ms  %6.1f MiB peak\n", "scan the image packed in a tar", as, am
        printf "  %-34s %9.1f ms\n", "gzip -dc, layer after layer", ad
        printf "  %-34s %9.2fx\n", "ratio scan / serial gzip -dc", as / ad
        printf "BENCH archives zst_ratio=%.2f gz_ratio=%.2f tar_ratio=%.2f oci_ratio=%.2f oci_tar_ratio=%.2f zst_ms=%.0f zstd_ms=%.0f gz_ms=%.0f gzip_ms=%.0f tar_ms=%.0f cat_ms=%.0f oci_ms=%.0f oci_gzip_ms=%.0f oci_tar_ms=%.0f peak_mb=%.1f,%.1f,%.1f,%.1f,%.1f\n",
            zs / zd, gs / gd, ps / pc, os / od, as / ad, zs, zd, gs, gd, ps, pc, os, od, as, zm, gm, pm, om, am
    }'
}

known_benchmarks() {
    compgen -A function bench_ | sed 's/^bench_//'
}

main() {
    if [[ ! $RUNS =~ ^[1-9][0-9]*$ ]]; then
        log "error: BENCH_RUNS must be a positive integer, not '$RUNS'"
        exit 2
    fi

    local -a known selected
    mapfile -t known < <(known_benchmarks)
    if (($# == 0)); then
        selected=("${known[@]}")
    else
        selected=("$@")
    fi

    # Check every name before running anything, so a typo does not cost a long run.
    local name
    for name in "${selected[@]}"; do
        if ! declare -F "bench_$name" >/dev/null; then
            log "error: unknown benchmark '$name'; known: ${known[*]}"
            exit 2
        fi
    done

    for name in "${selected[@]}"; do
        "bench_$name"
    done
}

main "$@"
