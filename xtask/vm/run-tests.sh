#!/usr/bin/bash
# Guest side of `cargo xtask vm-test`: a smoke check of the guest environment, then every
# test executable listed in /etc/lvs-vm/tests ("exe<TAB>manifest dir<TAB>package<TAB>name"),
# each with --test-threads=1 from its package directory, as `cargo test` would.
# Then memlock.sh (attach under a service's 8 MiB memlock limit).
# Prints one "LVS-VM-TEST: <name> PASS|FAIL rc=N (S s)" line per step; exits non-zero if any failed.
export LVS_IN_VM=1 RUST_BACKTRACE=1
failed=0

step() { # step NAME CMD... (lvs.steps=a,b on the kernel command line: only those)
    name=$1
    shift
    if [ -n "${LVS_ARG_steps:-}" ] && [[ ",$LVS_ARG_steps," != *",$name,"* ]]; then
        return
    fi
    echo "----- LVS-VM: running $name"
    t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" </dev/null
    rc=$?
    t1=$(cut -d' ' -f1 /proc/uptime)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 0 ]; then
        echo "LVS-VM-TEST: $name PASS (${secs} s)"
    else
        echo "LVS-VM-TEST: $name FAIL rc=$rc (${secs} s)"
        failed=$((failed + 1))
    fi
}

smoke() ( # a subshell: its set -e must not outlive it
    set -e
    echo "loader: ${LVS_LOADER:-unset}"
    "$LVS_LOADER" --help >/dev/null
    for tool in ip tc iptables-legacy ip6tables-legacy nft nsenter bash; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool"; return 1; }
    done
    ip netns add vmsmoke
    ip -n vmsmoke link add name va type veth peer name vb
    ip -n vmsmoke link set va up
    ip -n vmsmoke link set vb up
    tc -n vmsmoke qdisc add dev va clsact
    tc -n vmsmoke qdisc show dev va | grep -q clsact
    nsenter --net=/run/netns/vmsmoke iptables-legacy -t mangle -A PREROUTING -m mac --mac-source 00:0c:29:57:88:ce -j MARK --set-mark 3
    nsenter --net=/run/netns/vmsmoke iptables-legacy -t mangle -S PREROUTING | grep -q 'set-xmark 0x3'
    [ -d /sys/fs/bpf ] && grep -q ' /sys/fs/bpf bpf ' /proc/mounts
    ip netns del vmsmoke
    echo "smoke: netns, veth, clsact, iptables mac/MARK, bpffs ok"
)

step smoke smoke
step memlock /usr/lib/lvs-vm/memlock.sh

if [ -s /etc/lvs-vm/tests ]; then
    # Tab-separated; read in the current shell so $failed survives.
    tab=$(printf '\t')
    while IFS="$tab" read -r exe dir pkg name; do
        [ -n "$exe" ] || continue
        step "$pkg/$name" sh -c 'cd "$1" && CARGO_MANIFEST_DIR="$1" CARGO_PKG_NAME="$2" "$3" --test-threads=1' _ "$dir" "$pkg" "$exe"
    done </etc/lvs-vm/tests
else
    echo "LVS-VM: NOTE: no test executables were built (is there a test target yet?)"
fi

echo "LVS-VM: $failed step(s) failed"
[ $failed -eq 0 ]
