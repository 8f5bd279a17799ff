#!/usr/bin/bash
# The seed write-up's two-box LVS "localnode" active-active setup, for real, inside the guest
# (`cargo xtask vm-test --lvs`): two directors that are each other's real server, IPVS in DR
# mode configured by keepalived, a client, one L2 segment.
#
#   client 172.17.85.100 ---+
#   DR1    172.17.85.54  ---+--- br0 (namespace "sw")      VIP 172.17.85.56:80
#   DR2    172.17.85.55  ---+
#
# DR1 is the master: it holds the VIP on eth0 and answers ARP for it. DR2 has it on lo
# (arp_ignore=1, arp_announce=2). Both run IPVS with both directors as real servers.
#
# Phases, each in freshly created namespaces:
#   before    IPVS on "virtual_server VIP 80" on both, no marking: the forwarding loop.
#   iptables  the write-up's fix: "-m mac ! --mac-source PEER -j MARK" + "virtual_server
#             fwmark 3|4" (the reference behaviour).
#   lvs-ebpf  the same marking by lvs-ebpf (`lvs-loader attach eth0 --config ...`) +
#             "virtual_server fwmark 3|4".
# Every phase makes N sequential client connections to the VIP and counts, besides what the
# client saw: who served each request (the service logs request ids), IPVS connection stats,
# and iptables counters of SYNs crossing between the directors (matched by source MAC).
# Fails unless "before" shows the loop and both fixes cure it.
set -uo pipefail

N=${LVS_ARG_n:-100}
PHASES=${LVS_ARG_phases:-before,iptables,lvs-ebpf}
VIP=172.17.85.56
PORT=80
CLIENT_IP=172.17.85.100
CLIENT_MAC=02:00:ac:11:55:64
declare -A IP=([dr1]=172.17.85.54 [dr2]=172.17.85.55)
declare -A MAC=([dr1]=00:0c:29:dc:d2:6b [dr2]=00:0c:29:57:88:ce)
declare -A PEER=([dr1]=dr2 [dr2]=dr1)
declare -A MARK=([dr1]=3 [dr2]=4)
LAB=/run/lvs-lab
IPT=/usr/sbin/iptables-legacy
LOADER=${LVS_LOADER:-}
BUSYBOX=/usr/bin/busybox
IPVS_BY=keepalived
PIDS=()

log() { echo "[lvs] $*"; }
inns() { # inns NS CMD... (nsenter keeps /sys and bpffs, unlike `ip netns exec`)
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" "$@"
}

teardown() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
    for n in dr1 dr2; do
        if [ -d "/sys/fs/bpf/lvs-lab-$n" ] && [ -n "$LOADER" ]; then
            "$LOADER" --pin-dir "/sys/fs/bpf/lvs-lab-$n" --netns "$n" detach eth0 >/dev/null 2>&1
        fi
        rm -rf "/sys/fs/bpf/lvs-lab-$n"
    done
    for ns in client dr1 dr2 sw; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$LAB"
}

# --- the lab -----------------------------------------------------------------------------
setup_lab() {
    mkdir -p "$LAB"
    ip netns add sw
    ip -n sw link add br0 type bridge stp_state 0
    ip -n sw link set br0 up
    local node mac addr
    for node in client dr1 dr2; do
        if [ "$node" = client ]; then mac=$CLIENT_MAC addr=$CLIENT_IP; else mac=${MAC[$node]} addr=${IP[$node]}; fi
        ip netns add "$node"
        ip -n "$node" link set lo up
        ip -n "$node" link add eth0 address "$mac" type veth peer name "$node" netns sw || return 1
        ip -n sw link set "$node" master br0 up
        ip -n "$node" addr add "$addr/24" dev eth0
        ip -n "$node" link set eth0 up
    done
    for node in dr1 dr2; do
        inns "$node" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 >/dev/null
    done
    # DR1 is the master (what keepalived's VRRP would give it): VIP on eth0, answers ARP.
    ip -n dr1 addr add "$VIP/32" dev eth0
    # DR2 is the backup but still a real server: VIP on lo, silent for ARP.
    ip -n dr2 addr add "$VIP/32" dev lo

    # The service on each director: busybox httpd, a CGI that logs the request id and says
    # who served it.
    for node in dr1 dr2; do
        mkdir -p "$LAB/www-$node/cgi-bin"
        : >"$LAB/served-$node.log"
        cat >"$LAB/www-$node/cgi-bin/who" <<EOF
#!$BUSYBOX sh
echo "\$QUERY_STRING" >>$LAB/served-$node.log
printf 'Content-Type: text/plain\r\n\r\nserved-by=$node id=%s\n' "\$QUERY_STRING"
EOF
        chmod +x "$LAB/www-$node/cgi-bin/who"
        inns "$node" "$BUSYBOX" httpd -f -p "$PORT" -h "$LAB/www-$node" &
        PIDS+=($!)
    done
    # Counters: SYNs to VIP:80 from the peer director's MAC (a crossing) and from the client.
    for node in dr1 dr2; do
        inns "$node" "$IPT" -t mangle -A PREROUTING -d "$VIP" -p tcp --dport "$PORT" --syn \
            -m mac --mac-source "${MAC[${PEER[$node]}]}" -m comment --comment peer-syn
        inns "$node" "$IPT" -t mangle -A PREROUTING -d "$VIP" -p tcp --dport "$PORT" \
            -m mac --mac-source "${MAC[${PEER[$node]}]}" -m comment --comment peer-pkts
        inns "$node" "$IPT" -t mangle -A PREROUTING -d "$VIP" -p tcp --dport "$PORT" --syn \
            -m mac --mac-source "$CLIENT_MAC" -m comment --comment client-syn
        inns "$node" "$IPT" -t mangle -A PREROUTING -d "$VIP" -p tcp --dport "$PORT" \
            -m mac --mac-source "$CLIENT_MAC" -m comment --comment client-pkts
    done
    inns client "$IPT" -A INPUT -p icmp --icmp-type time-exceeded -m comment --comment icmp-te
    # Both services up (asked on their own addresses: no IPVS there).
    local i
    for node in dr1 dr2; do
        for i in $(seq 1 50); do
            inns client "$BUSYBOX" nc -w 1 "${IP[$node]}" "$PORT" </dev/null >/dev/null 2>&1 && break
            sleep 0.2
        done
    done
}

counter() { # counter NS COMMENT [TABLE] [CHAIN] -> packets
    inns "$1" "$IPT" -t "${3:-mangle}" -L "${4:-PREROUTING}" -nvx |
        awk -v c="/* $2 */" 'index($0, c) { print $1; found = 1; exit } END { if (!found) print 0 }'
}

# --- marking --------------------------------------------------------------------------------
mark_iptables() {
    local node
    for node in dr1 dr2; do
        inns "$node" "$IPT" -t mangle -I PREROUTING -d "$VIP" -p tcp -m tcp --dport "$PORT" \
            -m mac ! --mac-source "${MAC[${PEER[$node]}]}" -m comment --comment mark \
            -j MARK --set-mark "${MARK[$node]}" || return 1
    done
}

loader_usable() {
    [ -n "$LOADER" ] && [ -x "$LOADER" ] && "$LOADER" attach --help 2>&1 | grep -q -- --config
}

mark_ebpf() {
    local node peer
    for node in dr1 dr2; do
        peer=${PEER[$node]}
        cat >"$LAB/$node.toml" <<EOF
[[peer]]
mac = "${MAC[$peer]}"
name = "$peer-eth0"

[[vip]]
address = "$VIP"
port = $PORT
protocol = "tcp"
mark = ${MARK[$node]}
name = "web-internal"
EOF
        if ! "$LOADER" --pin-dir "/sys/fs/bpf/lvs-lab-$node" --netns "$node" attach eth0 --config "$LAB/$node.toml" \
            >"$LAB/attach-$node" 2>&1; then
            sed 's/^/[lvs]   /' "$LAB/attach-$node"
            log "lvs-loader attach failed on $node"
            return 1
        fi
        sed "s/^/[lvs] $node: /" "$LAB/attach-$node"
    done
}

# --- IPVS -------------------------------------------------------------------------------------
keepalived_conf() { # keepalived_conf NODE SERVICE ("VIP PORT" or "fwmark N")
    local node=$1 service=$2 rs rs_port=" $PORT"
    echo "global_defs {"
    echo "    router_id ${node^^}"
    echo "}"
    echo "virtual_server $service {"
    echo "    delay_loop 5"
    echo "    lb_algo rr"
    echo "    lb_kind DR"
    # A fwmark service has neither protocol nor real server ports (the packet keeps its own).
    if [[ $service == fwmark* ]]; then rs_port=""; else echo "    protocol TCP"; fi
    for rs in dr1 dr2; do
        echo "    real_server ${IP[$rs]}$rs_port {"
        echo "        weight 1"
        echo "        TCP_CHECK {"
        echo "            connect_port $PORT"
        echo "            connect_timeout 3"
        echo "        }"
        echo "    }"
    done
    echo "}"
}

ipvs_dests() { # number of real servers of the node's (only) service
    inns "$1" ipvsadm -Ln 2>/dev/null | grep -c -- '-> [0-9]'
}

start_ipvs() { # start_ipvs SERVICE_KIND (vip|fwmark)
    local kind=$1 node service i ok=1
    for node in dr1 dr2; do
        if [ "$kind" = vip ]; then service="$VIP $PORT"; else service="fwmark ${MARK[$node]}"; fi
        keepalived_conf "$node" "$service" >"$LAB/keepalived-$node.conf"
        if [ "$IPVS_BY" = keepalived ]; then
            keepalived --dont-fork --log-console --no-syslog --log-detail --check --namespace="$node" \
                -f "$LAB/keepalived-$node.conf" -p "$LAB/ka-$node.pid" -c "$LAB/ka-$node-checkers.pid" \
                -r "$LAB/ka-$node-vrrp.pid" >"$LAB/keepalived-$node.log" 2>&1 &
            PIDS+=($!)
        fi
    done
    if [ "$IPVS_BY" = keepalived ]; then
        for i in $(seq 1 100); do
            [ "$(ipvs_dests dr1)" -ge 2 ] && [ "$(ipvs_dests dr2)" -ge 2 ] && break
            sleep 0.2
        done
        if [ "$(ipvs_dests dr1)" -ge 2 ] && [ "$(ipvs_dests dr2)" -ge 2 ]; then
            return 0
        fi
        log "keepalived did not program IPVS within 20 s; its log:"
        sed 's/^/[lvs]   /' "$LAB"/keepalived-*.log
        log "falling back to ipvsadm for the rest of the scenario"
        IPVS_BY=ipvsadm
        for node in dr1 dr2; do inns "$node" ipvsadm -C; done
    fi
    for node in dr1 dr2; do
        if [ "$kind" = vip ]; then service=(-t "$VIP:$PORT"); else service=(-f "${MARK[$node]}"); fi
        inns "$node" ipvsadm -A "${service[@]}" -s rr || ok=0
        for i in dr1 dr2; do
            inns "$node" ipvsadm -a "${service[@]}" -r "${IP[$i]}:$PORT" -g -w 1 || ok=0
        done
    done
    [ $ok = 1 ]
}

# ipvs_stat NODE -> "service_conns dest_conns(dr1) dest_conns(dr2)"
ipvs_stat() {
    inns "$1" ipvsadm -Ln --stats --exact | awk -v a="${IP[dr1]}:" -v b="${IP[dr2]}:" '
        $1 == "TCP" || $1 == "FWM" { svc += $3 }
        $1 == "->" && index($2, a) == 1 { da += $3 }
        $1 == "->" && index($2, b) == 1 { db += $3 }
        END { printf "%d %d %d\n", svc, da, db }'
}

# --- the client -------------------------------------------------------------------------------
run_client() { # run_client PHASE -> $LAB/results-PHASE: "id ok dr1|dr2" or "id fail reason"
    local phase=$1
    inns client bash -c '
        phase=$1 n=$2 vip=$3 port=$4
        for i in $(seq 1 "$n"); do
            id="$phase-$i"
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
        done' _ "$phase" "$N" "$VIP" "$PORT" >"$LAB/results-$phase"
}

# --- one phase ----------------------------------------------------------------------------------
declare -A ROW VERDICT EXTRA
FAILED_PHASES=0

run_phase() { # run_phase before|iptables|lvs-ebpf
    local phase=$1 kind=fwmark marking t0 t1
    t0=$(cut -d' ' -f1 /proc/uptime)
    log "===== phase $phase"
    teardown
    if ! setup_lab; then
        VERDICT[$phase]="FAIL: could not build the lab"
        FAILED_PHASES=$((FAILED_PHASES + 1))
        return
    fi
    case $phase in
    before)
        kind=vip marking="none"
        ;;
    iptables)
        marking="iptables mac!peer MARK"
        mark_iptables || { VERDICT[$phase]="FAIL: iptables marking rules rejected"; FAILED_PHASES=$((FAILED_PHASES + 1)); return; }
        ;;
    lvs-ebpf)
        marking="lvs-ebpf (tc ingress)"
        if ! loader_usable; then
            VERDICT[$phase]="FAIL: lvs-loader has no working 'attach' (LVS_LOADER=${LOADER:-unset}): the eBPF cure cannot be shown"
            FAILED_PHASES=$((FAILED_PHASES + 1))
            return
        fi
        mark_ebpf || { VERDICT[$phase]="FAIL: lvs-loader attach failed (see above)"; FAILED_PHASES=$((FAILED_PHASES + 1)); return; }
        ;;
    esac
    if ! start_ipvs "$kind"; then
        VERDICT[$phase]="FAIL: IPVS could not be configured"
        FAILED_PHASES=$((FAILED_PHASES + 1))
        return
    fi
    log "IPVS on dr1 (by $IPVS_BY):"
    inns dr1 ipvsadm -Ln | sed 's/^/[lvs]   /'

    run_client "$phase"
    # IPVS folds its per-cpu counters into what ipvsadm shows every 2 s (the estimator, a
    # kthread since 6.2 that a busy TCG guest may run late): wait until they stop moving.
    local prev="" cur i
    for i in $(seq 1 8); do
        sleep 2
        cur="$(ipvs_stat dr1) $(ipvs_stat dr2)"
        [ "$cur" = "$prev" ] && break
        prev=$cur
    done

    local res=$LAB/results-$phase
    local ok failed by1 by2 dup wrong s1 s2 syn12 syn21 pk12 pk21 cs1 cs2 cp1 te crossed ratio
    ok=$(grep -c ' ok ' "$res")
    failed=$(grep -c ' fail ' "$res")
    by1=$(grep -c "^$phase-" "$LAB/served-dr1.log")
    by2=$(grep -c "^$phase-" "$LAB/served-dr2.log")
    # Exactly once: every id a client got an answer for was served once, failed ones never.
    dup=$(cat "$LAB/served-dr1.log" "$LAB/served-dr2.log" | sort | uniq -d | wc -l)
    wrong=$(cat "$LAB/served-dr1.log" "$LAB/served-dr2.log" | sort -u |
        grep -v -x -F -f <(awk '$2 == "ok" { print $1 }' "$res") | wc -l)
    read -r s1 s1a s1b <<<"$(ipvs_stat dr1)"
    read -r s2 s2a s2b <<<"$(ipvs_stat dr2)"
    syn12=$(counter dr2 peer-syn)
    syn21=$(counter dr1 peer-syn)
    pk12=$(counter dr2 peer-pkts)
    pk21=$(counter dr1 peer-pkts)
    cs1=$(counter dr1 client-syn)
    cs2=$(counter dr2 client-syn)
    cp1=$(counter dr1 client-pkts)
    te=$(counter client icmp-te filter INPUT)
    crossed=$s1b # connections DR1's IPVS sent to DR2
    ratio=$(awk -v c="$((syn12 + syn21))" -v n="$crossed" 'BEGIN { if (n > 0) printf "%.1f", c / n; else print "-" }')
    local reasons
    reasons=$(awk '$2 == "fail" { print $3 }' "$res" | sort | uniq -c | awk '{ printf "%s%s x %s", sep, $1, $2; sep = ", " }')

    log "client: $ok ok, $failed failed${reasons:+ ($reasons)}; served by dr1 $by1, dr2 $by2"
    log "IPVS dr1: service conns $s1 (-> dr1 $s1a, -> dr2 $s1b); dr2: service conns $s2 (-> dr1 $s2a, -> dr2 $s2b)"
    log "SYNs to VIP from the client MAC: at dr1 $cs1, at dr2 $cs2; crossing dr1->dr2 $syn12 (all pkts $pk12), dr2->dr1 $syn21 (all pkts $pk21); ICMP time-exceeded at client $te"
    for node in dr1 dr2; do
        log "ipvsadm -Ln --stats on $node:"
        inns "$node" ipvsadm -Ln --stats --exact | sed 's/^/[lvs]   /'
    done
    local verdict problems=()
    # The marker's own counters against iptables' view of the same packets.
    local m1 m2 p1 p2
    if [ "$phase" = iptables ]; then
        m1=$(counter dr1 mark)
        m2=$(counter dr2 mark)
        EXTRA[$phase]="iptables MARK rules: dr1 marked $m1 packets (client packets to the VIP: $cp1), dr2 marked $m2"
        [ "$m1" -eq "$cp1" ] && [ "$m2" -eq 0 ] || problems+=("MARK rule counters off: dr1 $m1 of $cp1, dr2 $m2")
    fi
    if [ "$phase" = lvs-ebpf ]; then
        for node in dr1 dr2; do
            log "lvs-loader stats on $node:"
            "$LOADER" --pin-dir "/sys/fs/bpf/lvs-lab-$node" --netns "$node" stats eth0 >"$LAB/stats-$node" 2>&1
            sed 's/^/[lvs]   /' "$LAB/stats-$node"
        done
        m1=$(grep -o ' marked_packets=[0-9]*' "$LAB/stats-dr1" | cut -d= -f2)
        p1=$(grep -o ' peer_packets=[0-9]*' "$LAB/stats-dr1" | cut -d= -f2)
        m2=$(grep -o ' marked_packets=[0-9]*' "$LAB/stats-dr2" | cut -d= -f2)
        p2=$(grep -o ' peer_packets=[0-9]*' "$LAB/stats-dr2" | cut -d= -f2)
        if [ -z "$m1" ] || [ -z "$p1" ] || [ -z "$m2" ] || [ -z "$p2" ]; then
            problems+=("could not read marked_packets/peer_packets from 'lvs-loader stats'")
        else
            local how
            how=$(grep -o -m1 'attached ([a-z]*' "$LAB/attach-dr1" | cut -d'(' -f2)
            EXTRA[$phase]="lvs-ebpf (attached via ${how:-?}) counters: dr1 marked $m1 (iptables saw $cp1 client packets), peer $p1; dr2 marked $m2, peer $p2 (iptables saw $pk12 packets from dr1)"
            [ "$m1" -eq "$cp1" ] && [ "$m1" -gt 0 ] || problems+=("dr1 marked $m1 packets, iptables counted $cp1 from the client")
            [ "$p1" -eq 0 ] || problems+=("dr1 saw $p1 packets from dr2")
            [ "$m2" -eq 0 ] || problems+=("dr2 marked $m2 packets")
            [ "$p2" -eq "$pk12" ] || problems+=("dr2 counted $p2 peer packets, iptables $pk12 from dr1")
        fi
    fi
    if [ "$phase" = before ]; then
        [ "$failed" -gt 0 ] || problems+=("no client connection failed")
        [ "$syn21" -gt 0 ] || problems+=("no SYN came back from dr2 to dr1")
        [ "$((syn12 + syn21))" -gt "$crossed" ] || problems+=("no SYN crossed more than once")
        if [ ${#problems[@]} -eq 0 ]; then
            verdict="loop reproduced: $failed/$N failed${reasons:+ ($reasons)}, $((syn12 + syn21)) SYN crossings for $crossed connections sent to dr2"
        else
            verdict="FAIL: loop NOT reproduced ($(
                IFS=';'
                echo "${problems[*]}"
            ))"
        fi
    else
        [ "$ok" -eq "$N" ] || problems+=("$failed/$N connections failed${reasons:+ ($reasons)}")
        [ "$dup" -eq 0 ] && [ "$wrong" -eq 0 ] && [ "$((by1 + by2))" -eq "$ok" ] || problems+=("requests not served exactly once (dup $dup, unexpected $wrong)")
        [ "$by1" -gt 0 ] && [ "$by2" -gt 0 ] || problems+=("not balanced: dr1 served $by1, dr2 $by2")
        [ "$s1" -eq "$N" ] || problems+=("dr1's fwmark service scheduled $s1 of $N connections: client packets not marked")
        [ "$s2" -eq 0 ] || problems+=("dr2's fwmark service scheduled $s2 connections: packets from dr1 were marked")
        [ "$syn21" -eq 0 ] && [ "$pk21" -eq 0 ] || problems+=("$pk21 packets ($syn21 SYNs) to the VIP went from dr2 to dr1")
        [ "$syn12" -eq "$by2" ] || problems+=("$syn12 SYN crossings dr1->dr2 for $by2 connections served by dr2")
        if [ ${#problems[@]} -eq 0 ]; then
            verdict="cured: $ok/$N ok, each served once (dr1 $by1, dr2 $by2), every crossing SYN crossed once"
        else
            verdict="FAIL: not cured ($(
                IFS=';'
                echo "${problems[*]}"
            ))"
        fi
    fi
    [[ $verdict == FAIL* ]] && FAILED_PHASES=$((FAILED_PHASES + 1))
    VERDICT[$phase]=$verdict
    t1=$(cut -d' ' -f1 /proc/uptime)
    ROW[$phase]=$(printf '%-9s %-24s %-10s %4s %6s %6s %6s %8s %8s %8s %9s %7s %9s %6.1f' \
        "$phase" "$marking" "$([ $kind = vip ] && echo "VIP:$PORT" || echo "fwmark")" \
        "$ok" "$failed" "$by1" "$by2" "$crossed" "$syn12" "$syn21" "$ratio" "$te" "$s2" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    log "phase $phase: $verdict"
}

# --- main -----------------------------------------------------------------------------------
for tool in ipvsadm keepalived "$IPT" nsenter; do
    command -v "$tool" >/dev/null || {
        log "missing $tool in the guest"
        exit 2
    }
done
if [ ! -e /proc/net/ip_vs ]; then
    log "this kernel has no IPVS (ip_vs): the LVS scenario cannot run"
    exit 2
fi

IFS=',' read -r -a phase_list <<<"$PHASES"
for phase in "${phase_list[@]}"; do
    run_phase "$phase"
done
teardown

echo "=== LVS-SCENARIO-REPORT BEGIN"
echo "Two-box LVS localnode (DR) on kernel $(uname -r): $N sequential connections per phase to VIP $VIP:$PORT,"
echo "IPVS rr, both directors real servers, IPVS configured by $IPVS_BY. DR1 ${IP[dr1]} ${MAC[dr1]} (VIP on eth0),"
echo "DR2 ${IP[dr2]} ${MAC[dr2]} (VIP on lo), client $CLIENT_IP."
printf '%-9s %-24s %-10s %4s %6s %6s %6s %8s %8s %8s %9s %7s %9s %6s\n' \
    phase marking service ok failed by-DR1 by-DR2 "DR1->DR2" "SYN1->2" "SYN2->1" "SYN/xconn" ICMP-TE "DR2-sched" secs
for phase in "${phase_list[@]}"; do
    [ -n "${ROW[$phase]:-}" ] && echo "${ROW[$phase]}"
done
echo "  DR1->DR2: connections DR1's IPVS sent to DR2; SYN1->2 / SYN2->1: SYNs to the VIP crossing between the"
echo "  directors (iptables counters on the receiving side, matched by source MAC); SYN/xconn: crossings per"
echo "  connection sent to DR2 (1.0 = no bounce); ICMP-TE: time-exceeded errors the client got (TTL ran out"
echo "  in the loop); DR2-sched: connections DR2's IPVS service scheduled (0 = it never re-balanced DR1's)."
for phase in "${phase_list[@]}"; do
    [ -n "${EXTRA[$phase]:-}" ] && printf '%-9s %s\n' "$phase:" "${EXTRA[$phase]}"
done
for phase in "${phase_list[@]}"; do
    printf '%-9s %s\n' "$phase:" "${VERDICT[$phase]:-not run}"
done
echo "=== LVS-SCENARIO-REPORT END"
for phase in "${phase_list[@]}"; do
    echo "LVS-SCENARIO-VERDICT: $phase: ${VERDICT[$phase]:-not run}"
done
[ "$FAILED_PHASES" -eq 0 ]
