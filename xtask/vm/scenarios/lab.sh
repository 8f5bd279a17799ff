# shellcheck shell=bash
# The lab of the LVS scenarios (sourced): namespaces for a switch, clients and directors,
# bridges as L2 segments, veth NICs with the seed write-up's MACs, the services each
# director runs as a real server, the clients, and iptables counters.
#
# Every node is a network namespace; the switch namespace "sw" holds one bridge per
# segment. Nothing here touches anything outside the namespaces it creates.

LAB=/run/lvs-lab
IPT=/usr/sbin/iptables-legacy
IP6T=/usr/sbin/ip6tables-legacy
BUSYBOX=/usr/bin/busybox
LOADER=${LVS_LOADER:-}
UDP_HELPER=${LVS_VM_UDP:-/usr/local/bin/lvs-vm-udp}
PIDS=()
NODES=()
declare -A NIC_MAC NIC_ADDR NIC_ADDR6 # "node:iface" -> MAC / IPv4 / IPv6 address

log() { echo "[lvs] $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
inns() { # inns NODE CMD... (nsenter keeps /sys and bpffs, unlike `ip netns exec`)
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" "$@"
}
ipt() { # ipt NODE 4|6 ARGS... : iptables-legacy or ip6tables-legacy in NODE
    local node=$1 fam=$2
    shift 2
    if [ "$fam" = 6 ]; then inns "$node" "$IP6T" "$@"; else inns "$node" "$IPT" "$@"; fi
}
join_by() { # join_by SEP WORDS...
    local sep=$1 out="" w
    shift
    for w in "$@"; do out+="${out:+$sep}$w"; done
    echo "$out"
}

lab_reset() { # kill everything the lab started, delete its namespaces and pins
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
    if declare -F markers_stop >/dev/null; then markers_stop; fi
    for ns in "${NODES[@]}" sw; do ip netns del "$ns" 2>/dev/null; done
    NODES=()
    NIC_MAC=() NIC_ADDR=() NIC_ADDR6=()
    BASE=""
    rm -rf "$LAB" /sys/fs/bpf/lvs-ebpf
    mkdir -p "$LAB"
}

segment() { # segment BRIDGE: an L2 segment (a bridge in the switch namespace)
    [ -e /run/netns/sw ] || ip netns add sw
    ip -n sw link add "$1" type bridge stp_state 0 forward_delay 0 || return 1
    ip -n sw link set "$1" up
}

node() { # node NAME: a host (network namespace)
    ip netns add "$1" || return 1
    NODES+=("$1")
    inns "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 >/dev/null
    ip -n "$1" link set lo up
}

nic() { # nic NODE IFACE MAC BRIDGE ADDR/PFX [ADDR6/PFX]: a NIC of NODE on segment BRIDGE
    local node=$1 ifc=$2 mac=$3 br=$4 addr=$5 addr6=${6:-}
    local port="$node-$ifc"
    ip -n "$node" link add "$ifc" address "$mac" type veth peer name "$port" netns sw || return 1
    ip -n sw link set "$port" master "$br" up
    ip -n "$node" addr add "$addr" dev "$ifc"
    [ -n "$addr6" ] && ip -n "$node" addr add "$addr6" dev "$ifc" nodad
    ip -n "$node" link set "$ifc" up
    NIC_MAC[$node:$ifc]=$mac
    NIC_ADDR[$node:$ifc]=${addr%/*}
    NIC_ADDR6[$node:$ifc]=${addr6%/*}
}

director_sysctls() { # director_sysctls NODE IFACES...: the LVS-DR real-server ARP settings
    local node=$1 ifc
    shift
    inns "$node" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
    for ifc in "$@"; do
        inns "$node" sysctl -qw "net.ipv4.conf.$ifc.arp_ignore=1" "net.ipv4.conf.$ifc.arp_announce=2" \
            "net.ipv4.conf.$ifc.rp_filter=0" >/dev/null
    done
}

vip_add() { # vip_add NODE DEV VIP: the VIP on DEV (eth* = answers ARP/ND; lo = silent)
    local node=$1 dev=$2 vip=$3
    if [[ $vip == *:* ]]; then
        # Deprecated (preferred_lft 0): still accepted and answered for, never picked as a
        # source address. Else Linux prefers the /128 VIP over the director's /64 address
        # (longest matching prefix, capped at the address's prefix length), and keepalived's
        # health checks of the peer leave from the VIP, whose answers the peer keeps.
        ip -n "$node" addr add "$vip/128" dev "$dev" nodad preferred_lft 0
    else
        ip -n "$node" addr add "$vip/32" dev "$dev"
    fi
}

has_addr() { # has_addr NODE DEV ADDR
    ip -n "$1" -o addr show dev "$2" 2>/dev/null | grep -qw -- "$3"
}

# --- services: what each director serves as a real server -----------------------------------
http_service() { # http_service NODE: busybox httpd on :80, a CGI logs each request id
    local node=$1
    mkdir -p "$LAB/www-$node/cgi-bin"
    : >>"$LAB/served-$node.log"
    cat >"$LAB/www-$node/cgi-bin/who" <<EOF
#!$BUSYBOX sh
echo "\$QUERY_STRING" >>$LAB/served-$node.log
printf 'Content-Type: text/plain\r\n\r\nserved-by=$node id=%s\n' "\$QUERY_STRING"
EOF
    chmod +x "$LAB/www-$node/cgi-bin/who"
    inns "$node" "$BUSYBOX" httpd -f -p 80 -h "$LAB/www-$node" &
    PIDS+=($!)
}

udp_service() { # udp_service NODE VIP PORT: DNS-like answers from VIP:PORT, ids logged
    local node=$1 vip=$2 port=$3 addr
    : >>"$LAB/served-$node.log"
    if [[ $vip == *:* ]]; then addr="[$vip]:$port"; else addr="$vip:$port"; fi
    inns "$node" "$UDP_HELPER" serve "$addr" "$node" "$LAB/served-$node.log" &
    PIDS+=($!)
}

wait_http() { # wait_http CLIENT ADDR...: until each answers on :80 (asked directly, no IPVS)
    local client=$1 addr i
    shift
    for addr in "$@"; do
        for i in $(seq 1 50); do
            inns "$client" "$BUSYBOX" nc -w 1 "$addr" 80 </dev/null >/dev/null 2>&1 && break
            sleep 0.2
        done
    done
}

# --- clients -------------------------------------------------------------------------------------
# client_tcp CLIENT PREFIX N VIP PORT > results: "id ok NODE" or "id fail REASON", sequential
# connections (nc -w 4 under timeout 6), each a new TCP connection.
client_tcp() {
    inns "$1" bash -c '
        prefix=$1 n=$2 vip=$3 port=$4
        for i in $(seq 1 "$n"); do
            id="$prefix-$i"
            out=$(printf "GET /cgi-bin/who?%s HTTP/1.0\r\n\r\n" "$id" | timeout 6 nc -w 4 "$vip" "$port" 2>&1)
            rc=$?
            if [[ $out =~ served-by=([a-z0-9]+)\ id=([^[:space:]]+) ]] && [ "${BASH_REMATCH[2]}" = "$id" ]; then
                echo "$id ok ${BASH_REMATCH[1]}"
            elif [[ $out == *"No route to host"* ]]; then
                echo "$id fail no-route-to-host"
            elif [[ $out == *"refused"* ]]; then
                echo "$id fail refused"
            elif [[ $out == *"timed out"* ]] || [ $rc -eq 124 ] || [ $rc -eq 143 ]; then
                echo "$id fail timeout"
            else
                echo "$id fail other(rc=$rc)"
            fi
        done' _ "$2" "$3" "$4" "$5"
}

client_udp() { # client_udp CLIENT PREFIX N VIP PORT > results (one datagram per query, 3 s timeout)
    local addr
    if [[ $4 == *:* ]]; then addr="[$4]:$5"; else addr="$4:$5"; fi
    inns "$1" "$UDP_HELPER" client "$addr" "$2" "$3" 3000
}

# --- iptables counters ---------------------------------------------------------------------------
# Counters can be read against a baseline: `baseline_take` dumps them all into $BASE, and
# until `baseline_clear` every counter()/ipvs_conns/marker_stat returns the change since.
BASE=""
counter() { # counter NODE 4|6 COMMENT [TABLE] [CHAIN] -> packets of the rules with that comment
    local node=$1 fam=$2 c=$3 table=${4:-mangle} chain=${5:-PREROUTING} cur base=0
    cur=$(ipt "$node" "$fam" -t "$table" -L "$chain" -nvx | count_comment "$c")
    if [ -n "$BASE" ] && [ -f "$BASE/ipt-$node-$fam-$table-$chain" ]; then
        base=$(count_comment "$c" <"$BASE/ipt-$node-$fam-$table-$chain")
    fi
    echo $((cur - base))
}
count_comment() { awk -v c="/* $1 */" 'index($0, c) { n += $1 } END { print n + 0 }'; }

baseline_dump_ipt() { # baseline_dump_ipt NODE DIR: every chain the counters read
    local node=$1 dir=$2 fam
    for fam in 4 6; do
        ipt "$node" "$fam" -t mangle -L PREROUTING -nvx >"$dir/ipt-$node-$fam-mangle-PREROUTING" 2>/dev/null
        ipt "$node" "$fam" -t filter -L INPUT -nvx >"$dir/ipt-$node-$fam-filter-INPUT" 2>/dev/null
    done
}

icmp_te_counter() { # icmp_te_counter CLIENT: count ICMP(v6) time-exceeded reaching the client
    inns "$1" "$IPT" -A INPUT -p icmp --icmp-type time-exceeded -m comment --comment icmp-te
    inns "$1" "$IP6T" -A INPUT -p ipv6-icmp --icmpv6-type time-exceeded -m comment --comment icmp-te
}

icmp_te() { # icmp_te CLIENT -> time-exceeded errors the client got (both families)
    echo $(($(counter "$1" 4 icmp-te filter INPUT) + $(counter "$1" 6 icmp-te filter INPUT)))
}
