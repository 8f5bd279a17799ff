#!/usr/bin/busybox sh
# /init of the lvs-ebpf test guest (busybox ash, PID 1). Built by `cargo xtask vm-test`.
#
# Mounts the pseudo file systems, loads the kernel modules listed in /etc/lvs-vm/modules,
# runs the job named on the kernel command line (lvs.job=tests|lvs|probe) and prints
#     LVS-VM-RESULT: PASS          or     LVS-VM-RESULT: FAIL rc=N
# on the serial console, which is what the host looks for: qemu itself exits 0 after a
# power-off whatever happened in the guest.
# Debian's busybox ash prefers its applets to $PATH: real tools go by absolute path here
# (/bin/sh in the guest is bash, for everything else).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
export HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# The staged tree sits at its host paths: a checkout under /tmp or /run (CI clones
# anywhere) must not be hidden by a fresh tmpfs. The initramfs root is writable anyway.
for d in /run /tmp; do
    if [ -z "$(ls -A "$d" 2>/dev/null)" ]; then
        mount -t tmpfs -o mode=$([ "$d" = /tmp ] && echo 1777 || echo 0755) tmpfs "$d"
    else
        mkdir -p "$d" && chmod "$([ "$d" = /tmp ] && echo 1777 || echo 0755)" "$d"
    fi
done
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /run/netns /run/lock /var/log
/usr/sbin/ip link set lo up
hostname lvs-vm

# lvs.job=tests lvs.n=100 ... -> LVS_ARG_job=tests LVS_ARG_n=100
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    lvs.*=*)
        key=${arg%%=*}
        key=${key#lvs.}
        export "LVS_ARG_${key}=${arg#*=}"
        ;;
    esac
done
job=${LVS_ARG_job:-tests}

finish() {
    # A blank line first: the kernel may have left a partial line on the console.
    echo
    if [ "$1" -eq 0 ]; then
        echo "LVS-VM-RESULT: PASS"
    else
        echo "LVS-VM-RESULT: FAIL rc=$1"
    fi
    sync
    poweroff -f
    sleep 10
}

if [ "$job" = probe ]; then
    echo "LVS-VM-PROBE: up $(uname -r)"
    finish 0
fi

kver=$(uname -r)
echo "LVS-VM: kernel $kver, $(nproc) cpu(s), $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo), job $job"

# Modules: every one the host found for this kernel (the list says which it could not find).
missing_mods=""
if [ -f /etc/lvs-vm/modules ]; then
    while read -r mod; do
        case "$mod" in '' | '#'*) continue ;; esac
        /usr/sbin/modprobe -q "$mod" 2>/dev/null || missing_mods="$missing_mods $mod"
    done </etc/lvs-vm/modules
fi
[ -n "$missing_mods" ] && echo "LVS-VM: NOTE: could not load module(s):$missing_mods"
if [ -s /etc/lvs-vm/modules.absent ]; then
    echo "LVS-VM: NOTE: not shipped by kernel $kver: $(tr '\n' ' ' </etc/lvs-vm/modules.absent)"
fi

# Kernel features the tests care about, said plainly.
major=${kver%%.*}
rest=${kver#*.}
minor=${rest%%[!0-9]*}
if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 6 ]; }; then
    echo "LVS-VM: TCX (bpf_link TC attach): available (kernel >= 6.6)"
else
    echo "LVS-VM: TCX (bpf_link TC attach): NOT available on $kver (needs 6.6+); TCX-only cases skip, the netlink (cls_bpf) path is used"
fi
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 13 ]; }; then
    echo "LVS-VM: NOTE: batch updates of per-CPU array maps: NOT available on $kver (needs 5.13+); lvs-loader updates those element by element"
fi
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 14 ]; }; then
    echo "LVS-VM: NOTE: network namespace cookies (SO_NETNS_COOKIE): NOT available on $kver (needs 5.14+); lvs-loader identifies namespaces by inode and reports pins it cannot prove as 'unverified'"
fi
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 11 ]; }; then
    echo "LVS-VM: NOTE: BPF memory is charged to RLIMIT_MEMLOCK on $kver (before 5.11); lvs-loader raises the limit"
fi
[ -d /proc/net/ip_vs ] || [ -e /proc/net/ip_vs ] || /usr/sbin/modprobe -q ip_vs 2>/dev/null
if [ -e /proc/net/ip_vs ]; then
    echo "LVS-VM: IPVS: available"
else
    echo "LVS-VM: IPVS: NOT available"
fi

[ -f /etc/lvs-vm/env ] && . /etc/lvs-vm/env

case "$job" in
tests) /usr/lib/lvs-vm/run-tests.sh ;;
lvs) /usr/bin/bash /usr/lib/lvs-vm/lvs-scenario.sh ;;
shell) setsid cttyhack sh ;;
debug) /usr/bin/bash /usr/lib/lvs-vm/debug.sh ;;
*)
    echo "LVS-VM: unknown job '$job'"
    false
    ;;
esac
finish $?
