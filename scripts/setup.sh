#!/usr/bin/env bash
# Prepare this machine for binfmt-setup: install the Debian packages the tool and its tests
# use (only those missing), then build the release binary.
#
#   scripts/setup.sh            install packages, build target/release/binfmt-setup
#   scripts/setup.sh --no-build install packages only (scripts/test.sh uses this)
#
# Installing packages does not register anything in binfmt_misc: Debian's qemu-user-static
# only ships binfmt.d files, and nothing here runs systemd-binfmt or update-binfmts.
# The arm64 busybox for the rootless `run` tests is fetched by scripts/rootfs.sh into target/
# with a private apt list directory (the machine's apt architectures are not changed), and
# arm64's qemu-x86_64-static by scripts/arm64-host.sh the same way; rustup adds the
# aarch64-unknown-linux-musl target the arm64 build of binfmt-setup needs.
# Peer tools whose packages would act on the host when installed (binfmt-support's scripts
# enable every known format) are unpacked into target/peers instead, scripts not run; the
# tests and benchmarks run them only inside private binfmt_misc instances.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=1
for arg in "$@"; do
	case $arg in
	--no-build) build=0 ;;
	-h | --help)
		sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "setup.sh: unknown option '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

packages=(
	qemu-user-static # the emulators binfmt-setup registers and the tests run
	qemu-user        # dynamically linked emulators: diagnose's INTERPRETER_DYNAMIC test
	file             # the peer `inspect` is benchmarked against
	hyperfine        # benchmark timing
	shellcheck       # lint for these scripts
	util-linux       # unshare and nsenter for private binfmt_misc instances
	# The image tests (tests/integration/image.rs): scripts/image.sh builds the image with
	# umoci (below) and runc runs it. runc is a plain program: installing it starts and
	# enables nothing. (busybox-static for the image is fetched, not installed; the musl
	# Rust target is added by scripts/build-static.sh.)
	runc # the OCI runtime under Docker and containerd, run directly by the image tests
	musl-tools # musl-gcc: the static build's C (the TLS library) against musl's headers
	python3          # scripts/bench.sh reads JSON reports with it
	systemd          # systemd-binfmt, the peer that loads `export --format systemd` files
	libpipeline1     # a library update-binfmts (unpacked below) links against
	umoci            # builds the OCI images the scan tests read
	zstd             # the scan tests' .tar.zst (GNU tar --zstd)
	cmake            # builds zlib-ng, the inflate scan's gzip reading goes through
	pax-utils        # scanelf, the peer `scan` is benchmarked against
	time             # GNU time: peak memory in the scan benchmark
	# scan's registry and Docker tests (tests/integration/registry.rs, daemon.rs,
	# dockerd.rs) and the registry benchmark. The daemons they ship are only ever started by
	# the tests, on loopback or in a private namespace: see "services" below.
	docker.io       # dockerd and Debian's CLI (/usr/bin/docker) for docker-daemon: and docker save
	docker-registry # the CNCF distribution registry the registry tests serve images from
	skopeo          # pushes the tests' manifest lists; the benchmark's peer (skopeo copy)
	apache2-utils   # htpasswd: the registry's bcrypt logins
	openssl         # the test CA and the registry's certificate
	iproute2        # ip: loopback up in the private dockerd's network namespace
	man-db           # man -l: the tests render the generated manual pages
	# The builders the end-to-end tests build foreign images with (tests/integration/builders.rs,
	# docker.rs; docker.io and skopeo are listed above).
	buildah podman
	uidmap # newuidmap/newgidmap: `run` maps a user's subordinate ids with them
	# Toolchains that build the test fixtures: clang/lld for most targets, GNU binutils
	# where lld 16 has no backend (s390x, m68k, ppc64 ELFv1, arm64 ILP32).
	clang-16 lld-16 llvm-16
	binutils-s390x-linux-gnu binutils-powerpc64-linux-gnu
	binutils-m68k-linux-gnu binutils-aarch64-linux-gnu
	golang-go          # Go programs whose build information inspect reads (GOAMD64, GOARM)
	libc6-arm64-cross  # an arm64 loader and libc: diagnose's LIBRARY_MISSING test roots
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

sudo=()
if ((EUID != 0)) && command -v sudo >/dev/null; then
	sudo=(sudo)
fi
if ((${#missing[@]})); then
	if ((EUID != 0)) && ((${#sudo[@]} == 0)); then
		echo "setup.sh: need root to install: ${missing[*]} (run as root or install sudo)" >&2
		exit 3
	fi
	echo "setup.sh: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -q >/dev/null
	# Services: docker.io, containerd, docker-registry and podman would start their daemons from
	# their postinst scripts (on a host whose init runs services). The tests start their
	# own, so while installing, a policy-rc.d that answers 101 ("not allowed") keeps any
	# from starting, and the units these packages enabled are disabled again afterwards.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# setup.sh: no service starts while packages install\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 0755 "$policy"
		made_policy=1
	fi
	status=0
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || status=$?
	if ((made_policy)); then
		"${sudo[@]}" rm -f "$policy"
	fi
	((status == 0)) || exit "$status"
	if command -v systemctl >/dev/null; then
		for p in "${missing[@]}"; do
			case $p in
			docker.io) units=(docker.service docker.socket containerd.service) ;;
			docker-registry) units=(docker-registry.service) ;;
			podman) units=(podman.socket podman.service podman-restart.service podman-auto-update.timer) ;;
			*) units=() ;;
			esac
			if ((${#units[@]})); then
				"${sudo[@]}" systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
			fi
		done
	fi
fi

# An unprivileged user with subordinate ids, as a rootless builder's user has: the builder
# tests run `binfmt-setup run -- buildah ...` as it. No login shell, no home; useradd gives it
# a range in /etc/subuid and /etc/subgid (SUB_UID_MIN in login.defs), and one is added where
# it did not.
builder=binfmt-builder
if ! id "$builder" >/dev/null 2>&1; then
	if ((EUID != 0)) && ((${#sudo[@]} == 0)); then
		echo "setup.sh: need root to add the test user $builder (run as root or install sudo)" >&2
		exit 3
	fi
	"${sudo[@]}" useradd --no-create-home --shell /usr/sbin/nologin \
		--comment "binfmt-setup builder tests" "$builder"
	echo "setup.sh: added user $builder" >&2
fi
for file in /etc/subuid /etc/subgid; do
	if ! grep -q "^$builder:" "$file" 2>/dev/null; then
		flag=--add-subuids
		[[ $file == /etc/subgid ]] && flag=--add-subgids
		"${sudo[@]}" usermod "$flag" 300000-365535 "$builder"
	fi
done

# Unpack (never install) peer packages into target/peers/root.
peers=(binfmt-support arch-test)
peer_root=$root/target/peers/root
peer_stamp=$root/target/peers/stamp
if [[ "$(cat "$peer_stamp" 2>/dev/null)" != "${peers[*]}" ]]; then
	debs=$root/target/peers/debs
	rm -rf "$debs" "$peer_root"
	mkdir -p "$debs" "$peer_root"
	chmod 0777 "$debs" # apt-get download fetches as the _apt user where it can
	if ! (cd "$debs" && apt-get download -q "${peers[@]}" >/dev/null 2>&1); then
		"${sudo[@]}" apt-get update -q >/dev/null
		(cd "$debs" && apt-get download -q "${peers[@]}" >/dev/null)
	fi
	for deb in "$debs"/*.deb; do
		dpkg-deb -x "$deb" "$peer_root"
	done
	echo "${peers[*]}" >"$peer_stamp"
	echo "setup.sh: unpacked ${peers[*]} into $peer_root" >&2
fi

# An arm64 busybox root filesystem for the `run --rootfs` tests, and the builder tests' base
# images made from busybox roots (fetched once into target/).
"$root/scripts/rootfs.sh"
"$root/scripts/images.sh"

# The arm64-host simulation (tests/integration/arm64_host.rs): an arm64 build of the tool
# (the Rust target for it; rust-lld, which links it, comes with the toolchain) and arm64's
# qemu-x86_64-static (fetched once into target/).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-musl; then
	echo "setup.sh: rustup target add aarch64-unknown-linux-musl" >&2
	rustup target add aarch64-unknown-linux-musl
fi
"$root/scripts/arm64-host.sh"

if ((build)); then
	cd "$root"
	cargo build --release --locked
	echo "setup.sh: built $root/target/release/binfmt-setup" >&2
fi
