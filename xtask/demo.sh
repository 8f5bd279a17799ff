#!/usr/bin/env bash
# The two-box demo lab (the README's first command runs this through `cargo xtask demo`).
#
#   client 172.17.85.100 ──┐
#   DR1    172.17.85.54  ──┼── br0 (in namespace lvsdemo-lan)
#   DR2    172.17.85.55  ──┘
#   VIP    172.17.85.56:80 on DR1, served by a small HTTP server
#
# lvs-ebpf is attached to DR1's eth0 with DR2 as the peer. Connections from the client
# arrive marked 0x3 (IPVS `virtual_server fwmark 3` would schedule them); connections
# DR2 forwards (source MAC = DR2's) arrive unmarked (they go to DR1's local real server).
# The marks the kernel saw (iptables counters on DR1) are printed next to
# `lvs-loader stats`, and they must agree.
set -euo pipefail

LOADER=${LVS_LOADER:-target/release/lvs-loader}
N=${LVS_DEMO_CONNECTIONS:-10}
P=lvsdemo
PIN_DIR=/sys/fs/bpf/lvs-ebpf-demo
WORK=$(mktemp -d /tmp/lvs-demo.XXXXXX)
VIP=172.17.85.56
DR1_MAC=00:0c:29:dc:d2:6b
DR2_MAC=00:0c:29:57:88:ce

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; nsenter --net=/run/netns/$P-$ns -- "$@"; }

teardown() { # the lab, not the work dir (also clears leftovers of an interrupted run)
    if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    "$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 detach eth0 >/dev/null 2>&1 || true
    for ns in client dr1 dr2 lan; do ip netns del $P-$ns 2>/dev/null || true; done
    rmdir "$PIN_DIR" 2>/dev/null || true
}
trap 'teardown; rm -rf "$WORK"' EXIT
teardown

say "building the lab: client, DR1, DR2 on one bridge"
ip netns add $P-lan
ip -n $P-lan link add br0 type bridge
ip -n $P-lan link set br0 up
for host in client dr1 dr2; do
    ip netns add $P-$host
    ip -n $P-$host link set lo up
    ip -n $P-$host link add eth0 type veth peer name $host netns $P-lan
    ip -n $P-lan link set $host master br0 up
done
ip -n $P-dr1 link set eth0 address $DR1_MAC
ip -n $P-dr2 link set eth0 address $DR2_MAC
ip -n $P-client addr add 172.17.85.100/24 dev eth0
ip -n $P-dr1 addr add 172.17.85.54/24 dev eth0
ip -n $P-dr1 addr add $VIP/32 dev eth0
ip -n $P-dr2 addr add 172.17.85.55/24 dev eth0
for host in client dr1 dr2; do ip -n $P-$host link set eth0 up; done

cat > "$WORK/vips.toml" <<TOML
# DR1: trust DR2, mark everything else for VIP:80 with 0x3
[[peer]]
mac = "$DR2_MAC"
name = "dr2-eth0"

[[vip]]
address = "$VIP"
port = 80
protocol = "tcp"
mark = 0x3
name = "web-internal"
TOML
say "vips.toml on DR1"
cat "$WORK/vips.toml"
"$LOADER" check --config "$WORK/vips.toml"

say "lvs-loader attach eth0 on DR1"
"$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 attach eth0 --config "$WORK/vips.toml"
"$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 status

# What the kernel sees after TC ingress: iptables counters in mangle PREROUTING.
for m in 0x3 0x0; do
    in_ns dr1 iptables-legacy -w -t mangle -A PREROUTING -i eth0 -d $VIP -p tcp --dport 80 -m mark --mark $m
done

mkdir -p "$WORK/www" && echo "served by DR1" > "$WORK/www/index.html"
in_ns dr1 python3 -m http.server 80 --bind $VIP --directory "$WORK/www" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do in_ns dr1 bash -c "exec 3<>/dev/tcp/$VIP/80" 2>/dev/null && break; sleep 0.1; done
# (that probe came from DR1 itself over lo; the counters only count eth0)

fetch() { # fetch FROM_NS
    in_ns "$1" timeout 5 bash -c "exec 3<>/dev/tcp/$VIP/80 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" | tail -n1 || true
}
say "$N HTTP requests from the client, $N from DR2 (as if DR2 had forwarded them)"
ok=0
for _ in $(seq "$N"); do [ "$(fetch client)" = "served by DR1" ] && ok=$((ok + 1)); done
for _ in $(seq "$N"); do [ "$(fetch dr2)" = "served by DR1" ] && ok=$((ok + 1)); done
echo "$ok of $((2 * N)) requests answered"

say "marks the kernel saw on DR1 (iptables-legacy -t mangle -L PREROUTING -v -x)"
in_ns dr1 iptables-legacy -w -t mangle -L PREROUTING -v -x -n
say "lvs-loader stats eth0 on DR1"
"$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 stats eth0
JSON=$("$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 stats eth0 --json)

ipt_count() { in_ns dr1 iptables-legacy -w -t mangle -L PREROUTING -v -x -n | awk -v m="mark match $1" 'index($0, m) {print $1}'; }
marked_ipt=$(ipt_count 0x3)
unmarked_ipt=$(ipt_count 0x0)
marked_bpf=$(printf '%s' "$JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vips"][0]["marked_packets"])')
peer_bpf=$(printf '%s' "$JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vips"][0]["peer_packets"])')

say "summary"
printf '%-40s %10s %10s\n' "" "kernel" "lvs-ebpf"
printf '%-40s %10s %10s\n' "client -> VIP:80 packets marked 0x3" "$marked_ipt" "$marked_bpf"
printf '%-40s %10s %10s\n' "DR2 -> VIP:80 packets left unmarked" "$unmarked_ipt" "$peer_bpf"

status=0
if [ "$ok" -ne $((2 * N)) ]; then echo "FAIL: not every request was answered"; status=1; fi
if [ "$marked_ipt" != "$marked_bpf" ] || [ "$unmarked_ipt" != "$peer_bpf" ]; then
    echo "FAIL: the kernel's view and lvs-loader stats disagree"; status=1
fi
if [ "$marked_bpf" -eq 0 ] || [ "$peer_bpf" -eq 0 ]; then echo "FAIL: nothing marked or no peer traffic"; status=1; fi

say "lvs-loader detach eth0"
"$LOADER" --pin-dir "$PIN_DIR" --netns $P-dr1 detach eth0
if [ "$status" -eq 0 ]; then echo "demo OK: lvs-ebpf's marks equal what the kernel saw, packet for packet"; fi
exit $status
