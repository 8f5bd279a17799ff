#!/usr/bin/bash
# The LVS scenarios of `cargo xtask vm-test --lvs` (guest side): each script of scenarios/
# builds its lab in network namespaces, shows the forwarding loop without marking and its
# cure with lvs-ebpf, and prints a report. Selection: lvs.scenarios=a,b on the kernel
# command line (`--scenarios` of vm-test); default: all, in this order.
# One line per scenario for the host: "LVS-SCENARIO-RESULT: NAME PASS|FAIL SECONDS".
set -uo pipefail
ALL=two-box,failover,two-nic,three-box,udp,ipv6
DIR=/usr/lib/lvs-vm/scenarios

for tool in ipvsadm keepalived iptables-legacy ip6tables-legacy nsenter jq; do
    command -v "$tool" >/dev/null || {
        echo "[lvs] missing $tool in the guest"
        exit 2
    }
done
if [ ! -e /proc/net/ip_vs ]; then
    echo "[lvs] this kernel has no IPVS (ip_vs): the LVS scenarios cannot run"
    exit 2
fi

failed=0
IFS=',' read -r -a list <<<"${LVS_ARG_scenarios:-$ALL}"
for s in "${list[@]}"; do
    if [ ! -f "$DIR/$s.sh" ]; then
        echo "[lvs] unknown scenario '$s' (known: $ALL)"
        echo "LVS-SCENARIO-RESULT: $s FAIL 0"
        failed=$((failed + 1))
        continue
    fi
    echo "[lvs] ##### scenario $s"
    t0=$(cut -d' ' -f1 /proc/uptime)
    bash "$DIR/$s.sh"
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 0 ]; then
        echo "LVS-SCENARIO-RESULT: $s PASS $secs"
    else
        echo "LVS-SCENARIO-RESULT: $s FAIL $secs"
        failed=$((failed + 1))
    fi
done
[ $failed -eq 0 ]
