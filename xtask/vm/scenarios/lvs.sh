# shellcheck shell=bash
# The LVS side of the scenarios (sourced after lab.sh): services, keepalived and IPVS, the
# two markings (the write-up's iptables rules, lvs-ebpf run as its systemd unit would run
# it), the evidence (iptables counters, IPVS stats, marker counters) and the verdicts.
#
# A scenario declares its directors (DIRS), its services (`service`) and their fwmarks
# (`service_mark`), builds its lab in a `build_lab` function, then calls `run_phase` per
# phase and `scenario_report` at the end.

DIRS=()
SVCS=()
declare -A S_FAM S_PROTO S_VIP S_PORT S_IF S_CLIENT S_ENTRY S_MARK S_NAME
declare -A KA_PID
KA_ARGS=(--check)   # VRRP scenarios clear this (checker and VRRP both)
KA_DELAY=5          # delay_loop of the health checks
KA_INHIBIT=1        # a failed real server gets weight 0 (its IPVS stats stay) instead of removal
IPVS_BY=keepalived
declare -A ROW VERDICT EXTRA
ROWS=()
FAILED=0

# service TAG FAM PROTO VIP PORT IFACE CLIENT ENTRY NAME: a VIP:PORT the directors balance over
# themselves; IFACE is the directors' NIC on its segment, CLIENT the client node on that
# segment, ENTRY the director client packets reach (the VIP's owner).
service() {
    SVCS+=("$1")
    S_FAM[$1]=$2 S_PROTO[$1]=$3 S_VIP[$1]=$4 S_PORT[$1]=$5 S_IF[$1]=$6 S_CLIENT[$1]=$7 S_ENTRY[$1]=$8 S_NAME[$1]=$9
}
service_mark() { S_MARK[$1:$2]=$3; } # service_mark TAG DIRECTOR MARK
rs_addr() {                          # rs_addr TAG NODE: NODE's address on TAG's segment
    if [ "${S_FAM[$1]}" = 6 ]; then echo "${NIC_ADDR6[$2:${S_IF[$1]}]}"; else echo "${NIC_ADDR[$2:${S_IF[$1]}]}"; fi
}
peers_of() { # peers_of NODE IFACE: the other directors' MACs on that segment
    local d
    for d in "${DIRS[@]}"; do [ "$d" != "$1" ] && echo "${NIC_MAC[$d:$2]}"; done
}
hostport() { if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }

# --- evidence: iptables counters on every director, per service ----------------------------
# TAG-nonpeer-{pkts,new}: packets (new: SYNs / datagrams) to the service not from a peer
# director, i.e. exactly what the marking must mark; TAG-from-NODE-{pkts,new}: from peer
# NODE's MAC (a crossing); TAG-bounce: new packets from a peer whose TTL/hop limit shows
# they were forwarded more than once (the client sends 64, each IPVS DR hop takes one).
counters_install() {
    local t d p fam base new peers m mac
    for t in "${SVCS[@]}"; do
        fam=${S_FAM[$t]}
        base=(-i "${S_IF[$t]}" -d "${S_VIP[$t]}" -p "${S_PROTO[$t]}" --dport "${S_PORT[$t]}")
        if [ "${S_PROTO[$t]}" = tcp ]; then new=(--syn); else new=(); fi
        for d in "${DIRS[@]}"; do
            peers=()
            for m in $(peers_of "$d" "${S_IF[$t]}"); do peers+=(-m mac ! --mac-source "$m"); done
            ipt "$d" "$fam" -t mangle -A PREROUTING "${base[@]}" "${peers[@]}" -m comment --comment "$t-nonpeer-pkts"
            ipt "$d" "$fam" -t mangle -A PREROUTING "${base[@]}" "${new[@]}" "${peers[@]}" -m comment --comment "$t-nonpeer-new"
            for p in "${DIRS[@]}"; do
                [ "$p" = "$d" ] && continue
                mac=${NIC_MAC[$p:${S_IF[$t]}]}
                ipt "$d" "$fam" -t mangle -A PREROUTING "${base[@]}" -m mac --mac-source "$mac" -m comment --comment "$t-from-$p-pkts"
                ipt "$d" "$fam" -t mangle -A PREROUTING "${base[@]}" "${new[@]}" -m mac --mac-source "$mac" -m comment --comment "$t-from-$p-new"
                if [ "$fam" = 6 ]; then
                    ipt "$d" 6 -t mangle -A PREROUTING "${base[@]}" "${new[@]}" -m mac --mac-source "$mac" -m hl --hl-lt 63 -m comment --comment "$t-bounce"
                else
                    ipt "$d" 4 -t mangle -A PREROUTING "${base[@]}" "${new[@]}" -m mac --mac-source "$mac" -m ttl --ttl-lt 63 -m comment --comment "$t-bounce"
                fi
            done
        done
    done
}

# Frames to a service that arrive addressed to another host's MAC (a switch floods unknown
# unicast, e.g. while the old master's port is down): TC ingress, and so the marker, sees
# them; the IP layer drops them before netfilter, so iptables cannot. An nft netdev ingress
# chain counts them (pkttype otherhost: TAG-other-nonpeer / TAG-other-peer), so the marker's
# counters can still be checked packet for packet: marker = iptables + these.
otherhost_install() {
    local d ifc t fam peers
    for d in "${DIRS[@]}"; do
        inns "$d" nft add table netdev lvslab || return 1
        for ifc in $(marker_ifaces "$d"); do
            inns "$d" nft add chain netdev lvslab "in-$ifc" "{ type filter hook ingress device $ifc priority 0; policy accept; }" || return 1
        done
        for t in "${SVCS[@]}"; do
            ifc=${S_IF[$t]}
            peers=$(join_by ', ' $(peers_of "$d" "$ifc"))
            if [ "${S_FAM[$t]}" = 6 ]; then fam=ip6; else fam=ip; fi
            inns "$d" nft add rule netdev lvslab "in-$ifc" meta pkttype other $fam daddr "${S_VIP[$t]}" \
                "${S_PROTO[$t]}" dport "${S_PORT[$t]}" ether saddr != "{ $peers }" counter comment "\"$t-other-nonpeer\"" || return 1
            inns "$d" nft add rule netdev lvslab "in-$ifc" meta pkttype other $fam daddr "${S_VIP[$t]}" \
                "${S_PROTO[$t]}" dport "${S_PORT[$t]}" ether saddr "{ $peers }" counter comment "\"$t-other-peer\"" || return 1
        done
    done
}

other_count() { # other_count NODE COMMENT -> packets nft counted (against the baseline)
    local cur base=0
    cur=$(inns "$1" nft list table netdev lvslab 2>/dev/null | nft_comment "$2")
    if [ -n "$BASE" ] && [ -f "$BASE/nft-$1" ]; then base=$(nft_comment "$2" <"$BASE/nft-$1"); fi
    echo $((cur - base))
}
nft_comment() { awk -v c="comment \"$1\"" 'index($0, c) { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'; }

# --- marking ----------------------------------------------------------------------------------
mark_iptables() { # the write-up's rules: -m mac ! --mac-source PEER... -j MARK (reference)
    local t d m peers
    for t in "${SVCS[@]}"; do
        for d in "${DIRS[@]}"; do
            peers=()
            for m in $(peers_of "$d" "${S_IF[$t]}"); do peers+=(-m mac ! --mac-source "$m"); done
            ipt "$d" "${S_FAM[$t]}" -t mangle -I PREROUTING -d "${S_VIP[$t]}" -p "${S_PROTO[$t]}" -m "${S_PROTO[$t]}" \
                --dport "${S_PORT[$t]}" "${peers[@]}" -m comment --comment "$t-mark" \
                -j MARK --set-mark "${S_MARK[$t:$d]}" || return 1
        done
    done
}

marker_ifaces() { # marker_ifaces DIRECTOR: its NICs that carry a service
    local t
    for t in "${SVCS[@]}"; do echo "${S_IF[$t]}"; done | sort -u
}

# The marker as it runs in production, from the package's own systemd units (shipped in the
# guest under $UNITS): MARKER_RUN=oneshot (default) runs lvs-ebpf@IFACE.service's
# ExecStart/ExecStop lines, MARKER_RUN=daemon the ExecStart line of lvs-ebpf.service (the
# daemon, its interfaces from the config's [daemon] section). Either runs in the director's
# namespace with systemd's default memlock limit for services (8 MiB: the loader must raise
# it on kernels before 5.11) and the default pin root. The only substitutions are the
# paths: the loader's, and the director's config for /etc/lvs-ebpf/vips.toml (one per
# interface for the oneshot: two NICs with different peers take a drop-in in production).
UNITS=/usr/lib/lvs-vm/units
MARKER_RUN=${MARKER_RUN:-oneshot}
declare -A DAEMON_PID DAEMON_READY_S

marker_config() { # marker_config DIRECTOR IFACE [daemon-ifaces...] > vips.toml
    local d=$1 ifc=$2 m t
    shift 2
    if [ $# -gt 0 ]; then printf '[daemon]\ninterfaces = [%s]\n\n' "$(printf '"%s" ' "$@" | sed 's/" "/", "/g; s/ $//')"; fi
    for m in $(peers_of "$d" "$ifc"); do
        printf '[[peer]]\nmac = "%s"\n\n' "$m"
    done
    for t in "${SVCS[@]}"; do
        [ "${S_IF[$t]}" = "$ifc" ] || continue
        printf '[[vip]]\naddress = "%s"\nport = %s\nprotocol = "%s"\nmark = %s\nname = "%s"\n\n' \
            "${S_VIP[$t]}" "${S_PORT[$t]}" "${S_PROTO[$t]}" "${S_MARK[$t:$d]}" "${S_NAME[$t]}"
    done
}

unit_cmd() { # unit_cmd UNIT KEY IFACE CONFIG -> the unit's KEY= line with the lab's paths
    local line
    line=$(sed -n "s/^$2=//p" "$UNITS/$1")
    [ -n "$line" ] || return 1
    line=${line//\/usr\/sbin\/lvs-loader/$LOADER}
    line=${line//\/etc\/lvs-ebpf\/vips.toml/$4}
    echo "${line//%I/$3}"
}

markers_start() {
    local d ifc ifcs
    for d in "${DIRS[@]}"; do
        mkdir -p "$LAB/$d"
        if [ "$MARKER_RUN" = daemon ]; then
            mapfile -t ifcs < <(marker_ifaces "$d")
            if [ ${#ifcs[@]} -ne 1 ]; then
                log "$d: the daemon variant takes one config, so one segment (got ${ifcs[*]})"
                return 1
            fi
            marker_config "$d" "${ifcs[0]}" "${ifcs[@]}" >"$LAB/$d/vips.toml"
            daemon_start "$d" || return 1
            continue
        fi
        for ifc in $(marker_ifaces "$d"); do
            marker_config "$d" "$ifc" >"$LAB/$d/vips-$ifc.toml"
            if ! unit_run "$d" lvs-ebpf@.service ExecStart "$ifc" >"$LAB/$d/attach-$ifc" 2>&1; then
                sed "s/^/[lvs]   $d: /" "$LAB/$d/attach-$ifc"
                log "$d: lvs-ebpf@$ifc.service failed to start"
                return 1
            fi
            echo "$ifc" >>"$LAB/$d/oneshot-ifaces"
            sed "s/^/[lvs] $d: /" "$LAB/$d/attach-$ifc"
        done
    done
}

unit_run() { # unit_run NODE UNIT KEY IFACE: the unit's Exec line, as systemd runs it
    local node=$1 cmd
    cmd=$(unit_cmd "$2" "$3" "$4" "$LAB/$node/vips-$4.toml") || return 1
    inns "$node" bash -c "ulimit -l 8192 && exec $cmd"
}

# daemon_start DIRECTOR: lvs-ebpf.service's ExecStart in the background; returns once the
# daemon said "ready" (what Type=notify's READY=1 gates: keepalived starts after it).
daemon_start() {
    local d=$1 cmd i ifc n0 t0
    t0=$(now)
    cmd=$(unit_cmd lvs-ebpf.service ExecStart "" "$LAB/$d/vips.toml") || return 1
    n0=$(grep -cE '(^| )ready: ' "$LAB/$d/daemon.log" 2>/dev/null)
    log "$d: starting the daemon: $cmd"
    # nsenter and bash exec: $! is the daemon itself, which daemon_stop signals
    nsenter --net="/run/netns/$d" bash -c "ulimit -l 8192 && exec $cmd" >>"$LAB/$d/daemon.log" 2>&1 &
    DAEMON_PID[$d]=$!
    PIDS+=($!)
    for ifc in $(marker_ifaces "$d"); do
        ln -sf daemon.log "$LAB/$d/attach-$ifc"
        grep -qx "$ifc" "$LAB/$d/daemon-ifaces" 2>/dev/null || echo "$ifc" >>"$LAB/$d/daemon-ifaces"
    done
    for i in $(seq 1 300); do
        if [ "$(grep -cE '(^| )ready: ' "$LAB/$d/daemon.log")" -gt "${n0:-0}" ]; then
            sed "s/^/[lvs] $d: daemon: /" "$LAB/$d/daemon.log" | tail -4
            DAEMON_READY_S[$d]=$(since "$t0")
            log "$d: the daemon is ready, $(since "$t0") s after its start"
            return 0
        fi
        if ! kill -0 "${DAEMON_PID[$d]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    sed "s/^/[lvs]   $d: daemon: /" "$LAB/$d/daemon.log"
    log "$d: lvs-ebpf.service (the daemon) did not get ready within 30 s"
    return 1
}

daemon_stop() { # daemon_stop DIRECTOR: SIGTERM, as `systemctl stop lvs-ebpf`
    local d=$1 i
    kill "${DAEMON_PID[$d]}" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "${DAEMON_PID[$d]}" 2>/dev/null || break
        sleep 0.1
    done
    wait "${DAEMON_PID[$d]}" 2>/dev/null
}

markers_stop() { # oneshot: each unit's ExecStop; daemon: it is gone already (lab_reset), detach
    local dir node ifc
    for dir in "$LAB"/*/; do
        node=$(basename "$dir")
        [ -e "/run/netns/$node" ] || continue
        if [ -f "$dir/oneshot-ifaces" ]; then
            while read -r ifc; do unit_run "$node" lvs-ebpf@.service ExecStop "$ifc" >/dev/null 2>&1; done <"$dir/oneshot-ifaces"
        fi
        if [ -f "$dir/daemon-ifaces" ]; then
            while read -r ifc; do inns "$node" "$LOADER" detach "$ifc" >/dev/null 2>&1; done <"$dir/daemon-ifaces"
        fi
    done
}

marker_stat() { # marker_stat NODE IFACE FIELD -> the marker's total (lvs-loader stats --json)
    local cur base=0
    cur=$(inns "$1" "$LOADER" stats "$2" --json 2>/dev/null | jq -r ".totals.$3 // empty")
    [ -n "$cur" ] || return 0
    if [ -n "$BASE" ] && [ -s "$BASE/marker-$1-$2" ]; then
        base=$(jq -r ".totals.$3 // 0" <"$BASE/marker-$1-$2")
    fi
    echo $((cur - base))
}

baseline_take() { # counters from now on relative to this moment (after IPVS settled)
    local node d ifc
    BASE=""
    mkdir -p "$LAB/base"
    rm -f "$LAB"/base/*
    for node in "${NODES[@]}"; do baseline_dump_ipt "$node" "$LAB/base"; done
    for d in "${DIRS[@]}"; do
        inns "$d" ipvsadm -Ln --stats --exact >"$LAB/base/ipvs-$d" 2>/dev/null
        inns "$d" nft list table netdev lvslab >"$LAB/base/nft-$d" 2>/dev/null
        for ifc in $(marker_ifaces "$d"); do
            inns "$d" "$LOADER" stats "$ifc" --json >"$LAB/base/marker-$d-$ifc" 2>/dev/null
        done
    done
    BASE=$LAB/base
}
baseline_clear() { BASE=""; }

# --- keepalived / IPVS -------------------------------------------------------------------------
ka_service() { # ka_service TAG DIRECTOR vip|fwmark: one virtual_server block
    local t=$1 d=$2 kind=$3 rs port="" check
    if [ "$kind" = vip ]; then
        echo "virtual_server ${S_VIP[$t]} ${S_PORT[$t]} {"
        port=" ${S_PORT[$t]}"
    else
        echo "virtual_server fwmark ${S_MARK[$t:$d]} {"
        [ "${S_FAM[$t]}" = 6 ] && echo "    ip_family inet6"
    fi
    echo "    delay_loop $KA_DELAY"
    echo "    lb_algo rr"
    echo "    lb_kind DR"
    # A fwmark service has no real server ports (the packet keeps its own).
    [ "$kind" = vip ] && echo "    protocol ${S_PROTO[$t]^^}"
    for rs in "${DIRS[@]}"; do
        echo "    real_server $(rs_addr "$t" "$rs")$port {"
        echo "        weight 1"
        [ "$KA_INHIBIT" = 1 ] && echo "        inhibit_on_failure"
        if [ "${S_PROTO[$t]}" = tcp ]; then
            check=$((KA_DELAY < 3 ? 1 : 3))
            echo "        TCP_CHECK {"
            echo "            connect_port ${S_PORT[$t]}"
            echo "            connect_timeout $check"
            [ "$KA_DELAY" -lt 3 ] && echo "            retry 0"
            echo "        }"
        fi
        echo "    }"
    done
    echo "}"
}

ka_conf() { # ka_conf DIRECTOR vip|fwmark
    local d=$1 t
    echo "global_defs {"
    echo "    router_id ${d^^}"
    if declare -F ka_global_defs >/dev/null; then ka_global_defs "$d"; fi
    echo "}"
    if declare -F ka_vrrp >/dev/null; then ka_vrrp "$d"; fi
    for t in "${SVCS[@]}"; do ka_service "$t" "$d" "$2"; done
}

ka_start() { # ka_start DIRECTOR: keepalived in the director's namespace, as its service would
    local d=$1
    keepalived --dont-fork --log-console --no-syslog --log-detail "${KA_ARGS[@]}" --namespace="$d" \
        -f "$LAB/keepalived-$d.conf" -p "$LAB/ka-$d.pid" -c "$LAB/ka-$d-checkers.pid" \
        -r "$LAB/ka-$d-vrrp.pid" >>"$LAB/keepalived-$d.log" 2>&1 &
    KA_PID[$d]=$!
    PIDS+=($!)
}

ka_stop() { # ka_stop DIRECTOR: SIGTERM, as `systemctl stop keepalived`
    local d=$1 i
    kill "${KA_PID[$d]}" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "${KA_PID[$d]}" 2>/dev/null || break
        sleep 0.1
    done
    wait "${KA_PID[$d]}" 2>/dev/null
}

ipvs_dests() { inns "$1" ipvsadm -Ln 2>/dev/null | grep -c -- '-> [0-9[]'; }

# ipvs_conns NODE SERVICE [DEST]: connections IPVS scheduled on NODE's service SERVICE
# ("TCP 172.17.85.56:80", "FWM 3"), in total or to DEST (a real server address).
ipvs_conns() { # ipvs_conns DIRECTOR SERVICE [DEST] [COLUMN: 0 Conns (default), 1 InPkts]
    local cur base=0
    cur=$(inns "$1" ipvsadm -Ln --stats --exact 2>/dev/null | ipvs_count "$2" "${3:-}" "${4:-0}")
    if [ -n "$BASE" ] && [ -f "$BASE/ipvs-$1" ]; then base=$(ipvs_count "$2" "${3:-}" "${4:-0}" <"$BASE/ipvs-$1"); fi
    echo $((cur - base))
}
ipvs_count() { # ipvs_count SERVICE [DEST] [COLUMN] < ipvsadm -Ln --stats --exact
    awk -v svc="$1" -v d="$2" -v k="${3:-0}" '
        $1 == "TCP" || $1 == "UDP" || $1 == "FWM" { on = ($1 " " $2 == svc); c = ($3 == "IPv6") ? $(4 + k) : $(3 + k); if (on && d == "") n += c; next }
        $1 == "->" && on && d != "" && (index($2, d ":") == 1 || index($2, "[" d "]:") == 1) { n += $(3 + k) }
        END { print n + 0 }'
}

svc_key() { # svc_key TAG DIRECTOR vip|fwmark -> how ipvsadm -Ln names the service
    if [ "$3" = vip ]; then
        echo "${S_PROTO[$1]^^} $(hostport "${S_VIP[$1]}" "${S_PORT[$1]}")"
    else
        echo "FWM ${S_MARK[$1:$2]}"
    fi
}

ipvs_start() { # ipvs_start vip|fwmark: keepalived on every director (ipvsadm if it fails)
    local kind=$1 d t rs i want=$((${#SVCS[@]} * ${#DIRS[@]})) ready
    for d in "${DIRS[@]}"; do
        ka_conf "$d" "$kind" >"$LAB/keepalived-$d.conf"
        [ "$IPVS_BY" = keepalived ] && ka_start "$d"
    done
    if [ "$IPVS_BY" = keepalived ]; then
        for i in $(seq 1 100); do
            ready=1
            for d in "${DIRS[@]}"; do [ "$(ipvs_dests "$d")" -ge "$want" ] || ready=0; done
            [ $ready = 1 ] && return 0
            sleep 0.2
        done
        log "keepalived did not program IPVS within 20 s; its log:"
        sed 's/^/[lvs]   /' "$LAB"/keepalived-*.log
        log "falling back to ipvsadm for the rest of the scenario"
        echo "LVS-VM: FALLBACK: keepalived did not program IPVS in $SCENARIO; ipvsadm used"
        IPVS_BY=ipvsadm
        for d in "${DIRS[@]}"; do inns "$d" ipvsadm -C; done
    fi
    local svc fam
    for d in "${DIRS[@]}"; do
        for t in "${SVCS[@]}"; do
            fam=()
            [ "${S_FAM[$t]}" = 6 ] && fam=(-6)
            if [ "$kind" = vip ]; then
                svc=(-"${S_PROTO[$t]:0:1}" "$(hostport "${S_VIP[$t]}" "${S_PORT[$t]}")")
                fam=()
            else
                svc=(-f "${S_MARK[$t:$d]}")
            fi
            inns "$d" ipvsadm -A "${svc[@]}" "${fam[@]}" -s rr || return 1
            for rs in "${DIRS[@]}"; do
                inns "$d" ipvsadm -a "${svc[@]}" "${fam[@]}" -r "$(hostport "$(rs_addr "$t" "$rs")" "${S_PORT[$t]}")" -g -w 1 || return 1
            done
        done
    done
}

ipvs_settle() {
    # IPVS folds its per-cpu counters into what ipvsadm shows every 2 s (the estimator, a
    # kthread since 6.2 that a busy TCG guest may run late): wait until they stop moving.
    local prev="" cur i d
    for i in $(seq 1 8); do
        sleep 2
        cur=$(for d in "${DIRS[@]}"; do inns "$d" ipvsadm -Ln --stats --exact; done | md5sum)
        [ "$cur" = "$prev" ] && break
        prev=$cur
    done
}
