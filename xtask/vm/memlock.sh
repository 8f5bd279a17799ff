#!/usr/bin/bash
# Guest step "memlock" of `cargo xtask vm-test`: attach under a systemd service's default
# memlock limit (LimitMEMLOCK=8M, `ulimit -l 8192`). Before Linux 5.11 BPF maps are charged
# to RLIMIT_MEMLOCK, from 5.11 on to the memory cgroup. The maps are sized from the config
# (~0.6 MiB for 1 VIP, ~24 MiB for 20,000 VIPs on 2 CPUs).
#
#  1. as root (CAP_SYS_RESOURCE): attach of 20,000 VIPs must succeed on every kernel (on
#     < 5.11 the loader raises the limit first);
#  2. without CAP_SYS_RESOURCE (the limit cannot be raised): attach of 1 VIP must succeed
#     on every kernel (a small config fits 8 MiB); attach of 20,000 VIPs, and a reload of
#     the 1-VIP attachment to 20,000 VIPs (which grows the maps), must succeed on >= 5.11;
#     on < 5.11 they must fail, say that RLIMIT_MEMLOCK is the problem, and change
#     nothing (no pins of the failed attach; the 1-VIP attachment intact, no `:new`).
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
big=$(mktemp)
{
    cat "$cfg"
    for i in $(seq 0 19999); do
        printf '[[vip]]\naddress = "198.18.%d.%d"\nport = 443\nmark = 4\n' $((i >> 8)) $((i & 255))
    done
} >"$big"

failed=0
run() { # run LABEL COMMAND CONFIG SETPRIV-ARGS... -> output in $out, status in $rc
    # The limit is set while still root (the kernel's default for init before 5.16 is
    # 64 KiB: raising it to 8 MiB needs CAP_SYS_RESOURCE too), then setpriv drops caps.
    local label=$1 cmd=$2 config=$3
    shift 3
    out=$(bash -c 'ulimit -l 8192 && exec setpriv "${@:6}" -- "$0" --pin-dir "$1" --netns "$2" "$4" va --config "$3"' \
        "$LOADER" "$PINS" "$NS" "$config" "$cmd" _ "$@" 2>&1)
    rc=$?
    echo "memlock: $label: exit $rc: $(head -c 400 <<<"$out")"
}
nocap=(--bounding-set -sys_resource --inh-caps -sys_resource)
# A failure that must name RLIMIT_MEMLOCK on < 5.11, and a success on >= 5.11.
memlock_bound() { # LABEL
    if [ $old = 0 ]; then
        if [ $rc -ne 0 ]; then
            echo "memlock: FAIL: $1 failed on $kver without CAP_SYS_RESOURCE (memlock does not apply there)"
            failed=1
        fi
    elif [ $rc -eq 0 ]; then
        echo "memlock: FAIL: $1 succeeded on $kver with an 8 MiB memlock limit it could not raise"
        failed=1
    elif ! grep -q 'RLIMIT_MEMLOCK' <<<"$out"; then
        echo "memlock: FAIL: $1: the error does not name RLIMIT_MEMLOCK"
        failed=1
    fi
}

echo "memlock: kernel $kver: BPF memory charged to $([ $old = 1 ] && echo "RLIMIT_MEMLOCK (< 5.11)" || echo "the memory cgroup (>= 5.11)")"
run "20,000 VIPs, ulimit -l 8192, as root" attach "$big" --reuid=0
if [ $rc -ne 0 ]; then
    echo "memlock: FAIL: attach under ulimit -l 8192 failed as root"
    failed=1
fi
"$LOADER" --pin-dir "$PINS" --netns "$NS" detach va >/dev/null 2>&1

run "20,000 VIPs, ulimit -l 8192, without CAP_SYS_RESOURCE" attach "$big" "${nocap[@]}"
memlock_bound "attach of 20,000 VIPs"
if [ $old = 1 ] && [ -e "$PINS" ] && [ -n "$(ls -A "$PINS" 2>/dev/null)" ]; then
    echo "memlock: FAIL: the failed attach left pins under $PINS"
    failed=1
fi
"$LOADER" --pin-dir "$PINS" --netns "$NS" detach va >/dev/null 2>&1

run "1 VIP, ulimit -l 8192, without CAP_SYS_RESOURCE" attach "$cfg" "${nocap[@]}"
if [ $rc -ne 0 ]; then
    echo "memlock: FAIL: a 1-VIP attach does not fit an 8 MiB memlock limit"
    failed=1
else
    run "reload to 20,000 VIPs (growth), without CAP_SYS_RESOURCE" reload "$big" "${nocap[@]}"
    memlock_bound "a growing reload to 20,000 VIPs"
    if [ $old = 1 ]; then
        st=$("$LOADER" --pin-dir "$PINS" --netns "$NS" status --json 2>&1)
        if ! grep -q '"state": *"ok"' <<<"$st" || ! grep -q '"vips": *1,' <<<"$st"; then
            echo "memlock: FAIL: the failed growth did not leave the 1-VIP attachment intact: $st"
            failed=1
        fi
        if find "$PINS" -name '*:new' | grep -q .; then
            echo "memlock: FAIL: the failed growth left a :new directory"
            failed=1
        fi
    fi
fi
rm -f "$big"
[ $failed -eq 0 ] && echo "memlock: ok"
exit $failed
