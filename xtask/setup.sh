#!/usr/bin/env bash
# Idempotent developer/CI set-up for lvs-ebpf. Called by `cargo xtask setup`
# (and implicitly by `cargo xtask demo`, `cargo xtask test`, `cargo xtask bench`).
#
#  1. nightly rust-src        (the eBPF side is built with -Z build-std=core)
#  2. bpf-linker              (built against the nightly's own libLLVM)
#  3. Debian packages         (iptables/nftables references, bpftool, tcpdump...)
#
# Extra package groups: `setup.sh vm` also installs qemu and what the VM tests need;
# `setup.sh package` what `cargo xtask package` needs (the musl target, cargo-deb,
# debootstrap, systemd-analyze). Groups can be combined: `setup.sh vm package`.
set -euo pipefail

SETUP_GROUPS=" $* "
has_group() { [[ "${SETUP_GROUPS}" == *" $1 "* ]]; }

log() { printf '[setup] %s\n' "$*" >&2; }

NIGHTLY=${LVS_NIGHTLY:-nightly}

# --- 1. nightly + rust-src -----------------------------------------------
if ! rustup toolchain list | grep -q "^${NIGHTLY}"; then
    log "installing toolchain ${NIGHTLY}"
    rustup toolchain install "${NIGHTLY}" --profile minimal
fi
if ! rustup component list --toolchain "${NIGHTLY}" --installed | grep -q '^rust-src'; then
    log "adding rust-src to ${NIGHTLY}"
    rustup component add rust-src --toolchain "${NIGHTLY}"
fi

# --- 2. bpf-linker against the nightly's libLLVM --------------------------
if ! command -v bpf-linker >/dev/null 2>&1 || ! bpf-linker --version >/dev/null 2>&1; then
    sysroot=$(rustc "+${NIGHTLY}" --print sysroot)
    # e.g. libLLVM.so.22.1-rust-1.97.0-nightly
    llvm_so=$(cd "${sysroot}/lib" && ls libLLVM.so.* 2>/dev/null | head -n1 || true)
    if [ -z "${llvm_so}" ]; then
        echo "setup: no libLLVM.so.* in ${sysroot}/lib; cannot build bpf-linker" >&2
        exit 1
    fi
    major=$(printf '%s' "${llvm_so}" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')
    prefix="${CARGO_HOME:-$HOME/.cargo}/lvs-ebpf-llvm-${major}"
    mkdir -p "${prefix}/lib"
    ln -sf "${sysroot}/lib/${llvm_so}" "${prefix}/lib/libLLVM.so"
    ln -sf "${sysroot}/lib/${llvm_so}" "${prefix}/lib/${llvm_so}"
    log "building bpf-linker against ${llvm_so} (LLVM ${major}); takes about a minute"
    LLVM_PREFIX="${prefix}" cargo install bpf-linker --locked --no-default-features --features "llvm-${major}"
fi

# --- 3. Debian packages ------------------------------------------------------
need_pkgs=()
want() { # want CMD PKG
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ] && [ ! -x "/sbin/$1" ]; then
        need_pkgs+=("$2")
    fi
}
want ip iproute2
want tc iproute2
want iptables-legacy iptables
want nft nftables
want bpftool bpftool
want tcpdump tcpdump
want nsenter util-linux
want keepalived keepalived     # `keepalived -t` checks lvs-loader check --keepalived's test configs
if has_group vm; then
    want qemu-system-x86_64 qemu-system-x86
    want busybox busybox-static
    want musl-gcc musl-tools
    want cpio cpio
    want ipvsadm ipvsadm          # IPVS rules inside the guest (LVS scenario)
    want modprobe kmod            # module dependencies (host) and loading (guest)
    want depmod kmod
    want objcopy binutils         # strips debug info off the test executables
    want ldd libc-bin
    want apt-get apt              # kernel packages: apt-get download
fi
if has_group package; then
    want debootstrap debootstrap       # the fresh Debian root the package is installed into
    want systemd-analyze systemd       # `systemd-analyze verify` of the units
    want file file                     # "statically linked"
    want readelf binutils              # no PT_INTERP, no DT_NEEDED; cargo-deb strips
    want setpriv util-linux            # the units' capability bounding set, applied
    want unshare util-linux
    want gzip gzip
    want qemu-system-x86_64 qemu-system-x86   # the guest: the package under systemd on 6.1
    want cpio cpio
    want depmod kmod
    want lintian lintian                # Debian's package checker: no error, no warning
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- 4. packaging: static musl target, cargo-deb ---------------------------
CARGO_DEB_VERSION=3.8.0
if has_group package; then
    # The package's lvs-loader is built for x86_64-unknown-linux-musl with the host
    # (stable) toolchain: static, no glibc needed at run time.
    if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
        log "adding the x86_64-unknown-linux-musl target"
        rustup target add x86_64-unknown-linux-musl
    fi
    if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb ${CARGO_DEB_VERSION}" ]; then
        log "installing cargo-deb ${CARGO_DEB_VERSION} (a few minutes)"
        cargo install --locked "cargo-deb@${CARGO_DEB_VERSION}"
    fi
fi

# bpffs for pins (the loader mounts it too, but tools like bpftool like it there)
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
    mount -t bpf bpf /sys/fs/bpf 2>/dev/null || log "could not mount bpffs on /sys/fs/bpf (not root?)"
fi
log "ok"
