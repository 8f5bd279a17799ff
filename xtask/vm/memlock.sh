#!/usr/bin/bash
# Guest step "memlock" of `cargo xtask vm-test`: attach under a systemd service's default
# memlock limit (LimitMEMLOCK=8M, `ulimit -l 8192`). Before Linux 5.11 BPF maps are charged
# to RLIMIT_MEMLOCK (the loader's maps take ~41 MiB), from 5.11 on to the memory cgroup.
#
#  1. as root (CAP_SYS_RESOURCE): attach must succeed on every kernel (on < 5.11 the loader
#     raises the limit first);
#  2. without CAP_SYS_RESOURCE (the limit cannot be raised): attach must succeed on >= 5.11;
#     on < 5.11 it must fail, change nothing, and say that RLIMIT_MEMLOCK is the problem.
set -uo pipefail
LOADER=${LVS_LOADER:?}
NS=vm-memlock
PINS=/sys/fs/bpf/vm-memlock
kver=$(uname -r)
major=${kver%%.*}
rest=${kver#*.}
minor=${rest%%[!0-9]*}
old=0
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 11 ]; }; then old=1; fi

cleanup() {
    "$LOADER" --pin-dir "$PINS" --netns "$NS" detach va >/dev/null 2>&1
    ip netns del "$NS" 2>/dev/null
    rm -rf "$PINS"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link add va type veth peer name vb
ip -n "$NS" link set va up
ip -n "$NS" link set vb up
cfg=$(mktemp)
cat >"$cfg" <<TOML
[[peer]]
mac = "00:0c:29:57:88:ce"

[[vip]]
address = "172.17.85.56"
port = 80
mark = 3
TOML

failed=0
attach() { # attach LABEL SETPRIV-ARGS... -> output in $out, status in $rc
    # The limit is set while still root (the kernel's default for init before 5.16 is
    # 64 KiB: raising it to 8 MiB needs CAP_SYS_RESOURCE too), then setpriv drops caps.
    local label=$1
    shift
    out=$(bash -c 'ulimit -l 8192 && exec setpriv "${@:5}" -- "$0" --pin-dir "$1" --netns "$2" attach va --config "$3"' \
        "$LOADER" "$PINS" "$NS" "$cfg" _ "$@" 2>&1)
    rc=$?
    echo "memlock: $label: exit $rc: $out"
}

echo "memlock: kernel $kver: BPF memory charged to $([ $old = 1 ] && echo "RLIMIT_MEMLOCK (< 5.11)" || echo "the memory cgroup (>= 5.11)")"
attach "ulimit -l 8192, as root" --reuid=0
if [ $rc -ne 0 ]; then
    echo "memlock: FAIL: attach under ulimit -l 8192 failed as root"
    failed=1
fi
"$LOADER" --pin-dir "$PINS" --netns "$NS" detach va >/dev/null 2>&1

attach "ulimit -l 8192, without CAP_SYS_RESOURCE" --bounding-set -sys_resource --inh-caps -sys_resource
if [ $old = 0 ]; then
    if [ $rc -ne 0 ]; then
        echo "memlock: FAIL: attach failed on $kver without CAP_SYS_RESOURCE (memlock does not apply there)"
        failed=1
    fi
else
    if [ $rc -eq 0 ]; then
        echo "memlock: FAIL: attach succeeded on $kver with an 8 MiB memlock limit it could not raise"
        failed=1
    elif ! grep -q 'RLIMIT_MEMLOCK' <<<"$out"; then
        echo "memlock: FAIL: the error does not name RLIMIT_MEMLOCK"
        failed=1
    elif [ -e "$PINS" ] && [ -n "$(ls -A "$PINS" 2>/dev/null)" ]; then
        echo "memlock: FAIL: the failed attach left pins under $PINS"
        failed=1
    fi
fi
[ $failed -eq 0 ] && echo "memlock: ok"
exit $failed
