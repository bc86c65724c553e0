#!/usr/bin/env bash
# Build the test fixtures: real programs of many architectures and formats, compiled from
# tests/fixtures-src by clang/lld and GNU binutils from Debian's packages (scripts/setup.sh
# installs them). Usage: scripts/fixtures.sh [OUTDIR]   (default target/fixtures)
#
# The output is rebuilt only when this script or its sources change (a stamp file holds
# their hash), so the test suite can call it on every run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/fixtures}
src=$root/tests/fixtures-src
stamp_now=$(cat "$0" "$src"/* | sha256sum | cut -d' ' -f1)
arm64_libc=/usr/aarch64-linux-gnu/lib/libc.so.6 # libc6-arm64-cross
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp_now" ]]; then
	exit 0
fi

cc=clang-16
objcopy=llvm-objcopy-16
for tool in "$cc" ld.lld-16 ld64.lld-16 lld-link-16 llvm-lipo-16 "$objcopy" \
	s390x-linux-gnu-ld powerpc64-linux-gnu-ld m68k-linux-gnu-as m68k-linux-gnu-ld \
	aarch64-linux-gnu-as aarch64-linux-gnu-ld ld go; do
	if ! command -v "$tool" >/dev/null; then
		echo "fixtures.sh: $tool is missing; run scripts/setup.sh first" >&2
		exit 3
	fi
done

tmp=$(mktemp -d "${out%/*}/.fixtures.XXXXXX" 2>/dev/null || { mkdir -p "${out%/*}" && mktemp -d "${out%/*}/.fixtures.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
c=$src/exit42.c
flags=(-nostdlib -ffreestanding -fno-stack-protector -O1 -w)
# MIPS linkers default to `__start`; name the entry for every target.

# Static programs linked by lld: NAME TARGET [extra clang flags]
lld() {
	local name=$1 target=$2
	shift 2
	"$cc" -target "$target" "${flags[@]}" -static -fuse-ld=lld-16 -Wl,-e,_start "$@" -o "$tmp/$name" "$c"
}
# Targets lld cannot link: compile with clang, link with GNU ld.
gnu() {
	local name=$1 target=$2 ld=$3
	shift 3
	"$cc" -target "$target" "${flags[@]}" -c "$@" -o "$tmp/$name.o" "$c"
	"$ld" -static -e _start -o "$tmp/$name" "$tmp/$name.o"
	rm "$tmp/$name.o"
}

lld amd64 x86_64-linux-gnu
lld arm64 aarch64-linux-gnu
lld armhf armv7a-linux-gnueabihf -mfloat-abi=hard
lld armel armv5te-linux-gnueabi -mfloat-abi=soft
lld armv6hf armv6-linux-gnueabihf -mfloat-abi=hard
lld armv7-softfp armv7a-linux-gnueabi -mfloat-abi=softfp
lld riscv64 riscv64-linux-gnu
lld ppc64le powerpc64le-linux-gnu
lld ppc64-elfv2 powerpc64-linux-gnu
lld ppc powerpc-linux-gnu
lld i386 i686-linux-gnu
lld mips mips-linux-gnu
lld mipsel mipsel-linux-gnu
lld mips64 mips64-linux-gnuabi64
lld mips64el mips64el-linux-gnuabi64
lld mipsn32 mips64-linux-gnuabin32
lld sparc64 sparc64-linux-gnu
lld x32 x86_64-linux-gnux32
lld freebsd-amd64 x86_64-unknown-freebsd
gnu s390x s390x-linux-gnu s390x-linux-gnu-ld
gnu ppc64-elfv1 powerpc64-linux-gnu powerpc64-linux-gnu-ld -mabi=elfv1
# Hand-written assembly where clang cannot help: NAME SOURCE AS LD [ld flags].
gas() {
	local name=$1 source=$2 as=$3 ld=$4
	shift 4
	"$as" "${gas_flags[@]}" -o "$tmp/$name.o" "$src/$source"
	"$ld" "$@" -e _start -o "$tmp/$name" "$tmp/$name.o"
	rm "$tmp/$name.o"
}
gas_flags=()
gas m68k m68k.s m68k-linux-gnu-as m68k-linux-gnu-ld
gas_flags=(-mabi=ilp32)
gas arm64-ilp32 ilp32.s aarch64-linux-gnu-as aarch64-linux-gnu-ld -m aarch64linux32
# No LoongArch linker in this Debian release: the compiler's object file is the fixture.
"$cc" -target loongarch64-linux-gnu "${flags[@]}" -c -o "$tmp/loong64.o" "$c"

# ARM programs without their attributes section: the variant must come from the float ABI.
"$objcopy" --remove-section .ARM.attributes "$tmp/armhf" "$tmp/armhf-noattr"
"$objcopy" --remove-section .ARM.attributes "$tmp/armel" "$tmp/armel-noattr"

# Dynamically linked programs naming a loader (PT_INTERP) that this host lacks.
"$cc" -target aarch64-linux-gnu "${flags[@]}" -fPIE -pie -fuse-ld=lld-16 \
	-Wl,--dynamic-linker=/lib/ld-linux-aarch64.so.1 -o "$tmp/arm64-dynamic" "$c"
"$cc" -target riscv64-linux-gnu "${flags[@]}" -fPIE -pie -fuse-ld=lld-16 \
	-Wl,--dynamic-linker=/lib/ld-linux-riscv64-lp64d.so.1 -o "$tmp/riscv64-dynamic" "$c"

# A static-pie (no loader, dynamic section, DF_1_PIE), as Debian builds qemu-*-static, and a
# shared library (no loader, no PIE flag): one is a static program, the other no program.
"$cc" -target aarch64-linux-gnu "${flags[@]}" -fPIE -static-pie -fuse-ld=lld-16 -Wl,-e,_start \
	-o "$tmp/arm64-static-pie" "$c"
"$cc" -target aarch64-linux-gnu "${flags[@]}" -fPIC -shared -fuse-ld=lld-16 -o "$tmp/arm64-shared.so" "$c"

# Mach-O, thin and universal.
for a in arm64 x86_64; do
	"$cc" -target "$a-apple-macos11" -O1 -c -o "$tmp/macho-$a.o" "$c"
	ld64.lld-16 -arch "$a" -platform_version macos 11.0 11.0 -e _main -o "$tmp/macho-$a" "$tmp/macho-$a.o"
	rm "$tmp/macho-$a.o"
done
llvm-lipo-16 -create "$tmp/macho-x86_64" "$tmp/macho-arm64" -output "$tmp/macho-universal"
rm "$tmp/macho-x86_64"

# PE for Windows, x86-64 and arm64.
for a in x86_64 aarch64; do
	"$cc" -target "$a-pc-windows-msvc" -O1 -c -o "$tmp/pe-$a.obj" "$c"
	lld-link-16 /entry:main /subsystem:console /nodefaultlib "/out:$tmp/pe-$a.exe" "$tmp/pe-$a.obj" >/dev/null
	rm "$tmp/pe-$a.obj"
done

# Scripts: a good one, one with CR LF line ends, one whose interpreter is missing.
printf '#!/bin/sh\nexit 42\n' >"$tmp/script-sh"
printf '#!/bin/sh\r\nexit 42\r\n' >"$tmp/script-crlf"
printf '#!/nonexistent/interpreter -x\nexit 42\n' >"$tmp/script-missing"
chmod 755 "$tmp"/script-*

# Damaged ELF: cut inside the program headers, and inside the ELF header.
head -c 100 "$tmp/arm64" >"$tmp/truncated-phdrs"
head -c 30 "$tmp/arm64" >"$tmp/truncated-header"

# Programs that need more than their architecture's baseline (tests/fixtures-src/needs.c):
# diagnose's ILLEGAL_INSTRUCTION, inspect's `needs`, scan's preflight.
need=$src/needs.c
"$cc" -target powerpc64le-linux-gnu -mcpu=power10 "${flags[@]}" -DNEED_POWER10 -static \
	-fuse-ld=lld-16 -Wl,-e,_start -o "$tmp/ppc64le-power10" "$need"
"$cc" -target riscv64-linux-gnu -march=rv64gcv "${flags[@]}" -DNEED_RVV -static \
	-fuse-ld=lld-16 -Wl,-e,_start -o "$tmp/riscv64-rvv" "$need"
# GNU ld writes GNU_PROPERTY_X86_ISA_1_NEEDED when told the level (lld 16 cannot).
"$cc" -target x86_64-linux-gnu "${flags[@]}" -DNEED_X86_V4 -c -o "$tmp/v4.o" "$need"
ld -z x86-64-v4 -static -e _start -o "$tmp/amd64-v4" "$tmp/v4.o"
rm "$tmp/v4.o"
# exit(geteuid()): what a setuid program runs as (SETUID_NEEDS_CREDENTIAL, the C study).
"$cc" -target aarch64-linux-gnu "${flags[@]}" -DSHOW_EUID -static -fuse-ld=lld-16 \
	-Wl,-e,_start -o "$tmp/arm64-euid" "$need"

# Go records GOAMD64/GOARM in its build information (Debian's Go 1.19).
gocache=$(mktemp -d)
for g in amd64-v3:amd64:GOAMD64=v3 arm-v6:arm:GOARM=6; do
	IFS=: read -r name goarch setting <<<"$g"
	(cd "$gocache" && cp "$src/exit42.go" main.go &&
		env GOCACHE="$gocache/cache" GOPATH="$gocache/path" GO111MODULE=off CGO_ENABLED=0 \
			GOOS=linux GOARCH="$goarch" "$setting" go build -trimpath -o "$tmp/go-$name" main.go)
done
chmod -R u+w "$gocache" && rm -rf "$gocache"

# LIBRARY_MISSING: dynamically linked programs whose DT_NEEDED library a root lacks. The stub
# library is kept beside them, in no directory a loader searches.
"$cc" -target x86_64-linux-gnu -fPIC -shared -nostdlib -fuse-ld=lld-16 \
	-Wl,-soname,libbinfmt-setup-stub.so.1 -o "$tmp/libbinfmt-setup-stub.so.1" "$src/stublib.c"
"$cc" -target x86_64-linux-gnu "${flags[@]}" -fPIE -pie -fuse-ld=lld-16 \
	-Wl,--dynamic-linker=/lib64/ld-linux-x86-64.so.2 -Wl,--no-as-needed \
	-o "$tmp/amd64-needs-stub" "$c" "$tmp/libbinfmt-setup-stub.so.1"
# An arm64 program needing libc.so.6, for a root holding the loader and not libc.
"$cc" -target aarch64-linux-gnu "${flags[@]}" -fPIE -pie -fuse-ld=lld-16 \
	-Wl,--dynamic-linker=/lib/ld-linux-aarch64.so.1 -Wl,--no-as-needed \
	-o "$tmp/arm64-needs-libc" "$c" "$arm64_libc"

echo "$stamp_now" >"$tmp/.stamp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
