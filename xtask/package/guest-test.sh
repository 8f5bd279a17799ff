#!/bin/bash
# Runs inside the qemu guest of `cargo xtask package --test` (Debian's 6.1 kernel, the
# Debian bookworm root with the package installed by dpkg -i, booted with systemd as
# PID 1), as lvs-pkg-guest-test.service. Drives the *installed* units with systemctl and
# prints `LVS-PKG-RESULT: PASS` or `LVS-PKG-RESULT: FAIL <why>` on the console, then powers
# off. Everything happens inside the guest: a veth pair and a namespace it creates.
set -u
DEV=lvs0
UNIT="lvs-ebpf@${DEV}.service"
say() { printf '%s\n' "$*" | sed 's/^/LVS-PKG: /'; }
fail() {
    say "FAIL: $*"
    systemctl --no-pager status "$UNIT" 2>&1 | sed 's/^/LVS-PKG:   /'
    journalctl --no-pager -b -u "$UNIT" 2>&1 | tail -n 30 | sed 's/^/LVS-PKG:   /'
    echo "LVS-PKG-RESULT: FAIL $*"
    exit 1
}
state() { systemctl is-active "$UNIT" 2>/dev/null; }

say "kernel $(uname -r), systemd $(systemctl --version | head -n1)"
say "lvs-loader $(/usr/sbin/lvs-loader --version) ($(dpkg-query -W -f='${Status}' lvs-ebpf))"
mountpoint -q /sys/fs/bpf || fail "systemd did not mount /sys/fs/bpf"

# Installed, not enabled, not running.
[ "$(systemctl is-enabled lvs-ebpf.service 2>&1)" = disabled ] || fail "lvs-ebpf.service enabled by the package"
[ "$(state)" = inactive ] || fail "$UNIT running before anyone started it"
[ -z "$(ls /sys/fs/bpf/lvs-ebpf 2>/dev/null)" ] || fail "pins before start"

# A director interface (lvs0) and a client in namespace c on the other end of a veth.
ip link add "$DEV" type veth peer name tx0 || fail "veth"
ip netns add c || fail "netns"
ip link set tx0 netns c
ip addr add 172.17.85.56/24 dev "$DEV"
ip link set "$DEV" up
ip -n c addr add 172.17.85.100/24 dev tx0
ip -n c link set tx0 up
ip -n c link set lo up

cp /etc/lvs-ebpf/vips.toml.example /etc/lvs-ebpf/vips.toml
systemctl start "$UNIT" || fail "systemctl start $UNIT"
[ "$(state)" = active ] || fail "$UNIT not active after start"
status=$(lvs-loader status 2>&1) || fail "lvs-loader status: $status"
say "$status"
echo "$status" | grep -E "^${DEV} +netlink +ok " >/dev/null || fail "status does not show ${DEV} netlink ok"

# Marking: TCP connections from the client to VIP:80 (refused: nothing listens; each SYN
# counts). The client's MAC is not the example's peer MAC, so every SYN gets mark 3.
for i in 1 2 3; do
    ip netns exec c timeout 3 bash -c 'exec 3<>/dev/tcp/172.17.85.56/80' 2>/dev/null
done
stats=$(lvs-loader stats "$DEV" --json) || fail "stats: $stats"
marked=$(echo "$stats" | sed -n 's/.*"marked": \([0-9]*\).*/\1/p' | head -n1)
say "marked packets after 3 connection attempts: ${marked:-none}"
[ "${marked:-0}" -ge 3 ] || fail "expected >= 3 marked packets, got ${marked:-none}"

# reload (ExecReload) and stop (ExecStop = detach).
systemctl reload "$UNIT" || fail "systemctl reload"
[ "$(state)" = active ] || fail "not active after reload"
systemctl stop "$UNIT" || fail "systemctl stop"
[ "$(state)" = inactive ] || fail "not inactive after stop ($(state))"
lvs-loader status | grep -q "no interface attached" || fail "still attached after stop: $(lvs-loader status)"
tc filter show dev "$DEV" ingress | grep -q lvs_ingress && fail "filter left after stop"

# BindsTo: the unit stops when its interface goes away.
systemctl start "$UNIT" || fail "second start"
ip link del "$DEV"
for _ in $(seq 1 100); do
    case "$(state)" in active | deactivating) sleep 0.2 ;; *) break ;; esac
done
say "after ip link del ${DEV}: $UNIT is $(state) ($(systemctl show "$UNIT" -p Result --value))"
say "$(lvs-loader status 2>&1)"
case "$(state)" in
    inactive | failed) ;;
    *) fail "$UNIT is $(state) after its interface was deleted" ;;
esac

say "sandbox: $(systemctl show "$UNIT" -p CapabilityBoundingSet -p ProtectSystem -p NoNewPrivileges | tr '\n' ' ')"
echo "LVS-PKG-RESULT: PASS"
