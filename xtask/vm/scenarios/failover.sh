#!/usr/bin/bash
# failover: the two-box setup with the VIP moved by keepalived's VRRP (DR1 master priority
# 150, DR2 backup 100, unicast peers on br0, advert_int 1) instead of a static address.
# Both directors keep the VIP on lo (their real-server side); VRRP adds it on the master's
# eth0, which then answers ARP (and sends gratuitous ARP on every transition).
# The marker runs as the daemon (lvs-ebpf.service's ExecStart; two-box and the others run
# the oneshot lvs-ebpf@.service), and keepalived tracks it with the README's vrrp_script
# (`lvs-loader status --check eth0`, interval 2, fall 2, rise 2).
#
#   before    VRRP, "virtual_server VIP 80", no marking: the loop, as in two-box.
#   lvs-ebpf  VRRP, markers, fwmark services; while a client connects continuously:
#     A  stop DR1's keepalived (SIGTERM: it gives up mastership with a priority-0 advert and
#        removes its IPVS services), wait 8 s, start it again (DR1 preempts);
#     B  take DR1's eth0 down (DR2 takes over when DR1's adverts stop: 3 x advert_int +
#        skew), wait 8 s, bring it up (DR1 preempts);
#     R  remove the marker's hook on DR1 (the master): the clsact qdisc (netlink) or the TCX
#        link (bpftool link detach); the daemon re-hooks it: repair time, no failure, no
#        SYN crossing twice, the packets left unmarked meanwhile;
#     D  stop DR1's daemon (SIGTERM leaves the datapath: the check still passes, DR1 stays
#        master and marks), then `lvs-loader detach eth0`: the check fails, keepalived puts
#        DR1 in FAULT and the VIP moves to DR2; start the daemon again (it attaches): DR1
#        leaves FAULT and preempts.
#   Each event but R: switch time (VRRP: event -> VIP on DR2's eth0), failed connections
#   around the switch and around the return, none elsewhere; no new packet ever crossed
#   twice (TTL); the markers' counters equal iptables' on both directors (D: on DR2, whose
#   marker stayed); DR2 marked and scheduled the client's connections while it was master;
#   after DR1's return a steady check of $TAIL connections shows the marks following the
#   MACs again (DR1 marks, DR2 does not).
# Events: lvs.events=A,B,R,D on the kernel command line (default all; `vm-test --ci` runs
# A,B,R).
SCENARIO=failover
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP=172.17.85.56
DIRS=(dr1 dr2)
service web 4 tcp "$VIP" 80 eth0 client dr1 web-internal
service_mark web dr1 3
service_mark web dr2 4
KA_ARGS=() # VRRP and health checks
KA_DELAY=1
KA_INHIBIT=1
TAIL=${LVS_ARG_tail:-20}
STEADY=8 # seconds of traffic before an event, and after each switch
GRACE=6  # after a switch, failures may go on this long (health checks, ARP caches)
declare -A PRIO=([dr1]=150 [dr2]=100) STATE=([dr1]=MASTER [dr2]=BACKUP)
declare -A FO_ROW
FO_EVENTS=()
FO_PFX="" # "ipt-" in the iptables variant (lvs.phases=iptables)
MARKER_RUN=daemon
KA_TRACK=0 # the vrrp_script on the marker (lvs-ebpf phase only: nothing to check before)
EVENTS=${LVS_ARG_events:-A,B,R,D}

# The README's "Health for keepalived" snippet, verbatim but for the loader's path.
ka_global_defs() {
    [ "$KA_TRACK" = 1 ] || return 0
    cat <<EOF
    enable_script_security
    script_user root              # the pins are root's (0700)
EOF
}
ka_track_script() {
    cat <<EOF
vrrp_script chk_lvs_ebpf {
    script "$LOADER status --check eth0"
    interval 2                    # every 2 s
    timeout 5
    fall 2                        # 2 failures in a row: FAULT, the VIP moves
    rise 2                        # 2 successes: back
}

EOF
}

ka_vrrp() { # the VRRP instance in keepalived.conf
    local d=$1 p
    p=$([ "$d" = dr1 ] && echo dr2 || echo dr1)
    [ "$KA_TRACK" = 1 ] && ka_track_script
    cat <<EOF
vrrp_instance VI_LVS {
    state ${STATE[$d]}
    interface eth0
    virtual_router_id 56
    priority ${PRIO[$d]}
    advert_int 1
    unicast_src_ip ${NIC_ADDR[$d:eth0]}
    unicast_peer {
        ${NIC_ADDR[$p:eth0]}
    }
    virtual_ipaddress {
        $VIP/32 dev eth0
    }
$([ "$KA_TRACK" = 1 ] && printf '    track_script {\n        chk_lvs_ebpf\n    }\n')
}
EOF
}

build_lab() {
    segment br0 || return 1
    node client && nic client eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 || return 1
    # The steady checks after each return connect from their own hosts: the continuous
    # client's IPVS connection entries (2 min in TIME_WAIT) would catch a reused source port.
    node probe-a && nic probe-a eth0 02:00:ac:11:55:65 br0 172.17.85.101/24 || return 1
    node probe-b && nic probe-b eth0 02:00:ac:11:55:66 br0 172.17.85.102/24 || return 1
    node probe-d && nic probe-d eth0 02:00:ac:11:55:67 br0 172.17.85.103/24 || return 1
    # Each event's continuous client is a host of its own too: IPVS keeps the entries of the
    # previous events' connections (FIN_WAIT/TIME_WAIT, up to 2 min) on both directors, and a
    # SYN that reuses such a source port follows them (conn_reuse_mode=1) instead of being
    # scheduled, even between two stale entries pointing at each other (seen once in a run
    # with four events back to back: one SYN bounced until its TTL ran out).
    node client-b && nic client-b eth0 02:00:ac:11:55:68 br0 172.17.85.104/24 || return 1
    node client-r && nic client-r eth0 02:00:ac:11:55:69 br0 172.17.85.105/24 || return 1
    node client-d && nic client-d eth0 02:00:ac:11:55:6a br0 172.17.85.106/24 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 || return 1
    director_sysctls dr1 eth0
    director_sysctls dr2 eth0
    vip_add dr1 lo "$VIP"
    vip_add dr2 lo "$VIP"
    http_service dr1
    http_service dr2
    icmp_te_counter client
    icmp_te_counter probe-a
    icmp_te_counter probe-b
    icmp_te_counter probe-d
    wait_http client 172.17.85.54 172.17.85.55
}

owner_is() { # owner_is NODE: NODE holds the VIP on eth0 (VRRP master), the other does not
    local other
    other=$([ "$1" = dr1 ] && echo dr2 || echo dr1)
    has_addr "$1" eth0 "$VIP" && ! has_addr "$other" eth0 "$VIP"
}
wait_owner() { # wait_owner NODE SECS -> prints the time it became owner, fails on timeout
    local i
    for i in $(seq 1 $(($2 * 10))); do
        if owner_is "$1"; then
            now
            return 0
        fi
        sleep 0.1
    done
    return 1
}
phase_ready() { # VRRP elected DR1 and the client resolves the VIP to it
    if ! wait_owner dr1 20 >/dev/null; then
        log "VRRP did not make dr1 master within 20 s; keepalived logs:"
        sed 's/^/[lvs]   /' "$LAB"/keepalived-*.log | tail -40
        return 1
    fi
    inns client ip neigh flush dev eth0 2>/dev/null
    return 0
}

# A client that connects continuously: "start end id ok NODE" / "start end id fail REASON".
client_loop() { # client_loop PREFIX STOPFILE [CLIENT]
    inns "${3:-client}" bash -c '
        prefix=$1 stop=$2 vip=$3 i=0
        while [ ! -e "$stop" ]; do
            i=$((i + 1))
            id="$prefix-$i"
            t0=$(cut -d" " -f1 /proc/uptime)
            out=$(printf "GET /cgi-bin/who?%s HTTP/1.0\r\n\r\n" "$id" | timeout 3 nc -w 2 "$vip" 80 2>&1)
            rc=$?
            t1=$(cut -d" " -f1 /proc/uptime)
            if [[ $out =~ served-by=([a-z0-9]+)\ id=([^[:space:]]+) ]] && [ "${BASH_REMATCH[2]}" = "$id" ]; then
                echo "$t0 $t1 $id ok ${BASH_REMATCH[1]}"
            elif [[ $out == *"No route to host"* ]]; then
                echo "$t0 $t1 $id fail no-route-to-host"
            elif [[ $out == *"refused"* ]]; then
                echo "$t0 $t1 $id fail refused"
            else
                echo "$t0 $t1 $id fail timeout(rc=$rc)"
            fi
        done' _ "$1" "$2" "$VIP"
}

event_do() { # event_do A|B away|back
    case $1-$2 in
    A-away) ka_stop dr1 ;;
    A-back) ka_start dr1 ;;
    B-away) ip -n dr1 link set eth0 down ;;
    B-back) ip -n dr1 link set eth0 up ;;
    D-away) inns dr1 "$LOADER" detach eth0 2>&1 | sed 's/^/[lvs] dr1: /' ;;
    D-back) daemon_start dr1 ;;
    esac
}

# D, before the event: SIGTERM DR1's daemon. The datapath stays: for longer than the
# vrrp_script's fall x interval the check passes, DR1 stays master and goes on marking.
health_hold() {
    local m0 m1 rc owner
    m0=$(marker_stat dr1 eth0 marked_packets)
    daemon_stop dr1
    log "event D: dr1's daemon stopped (SIGTERM) at $(now)"
    sleep 5
    inns dr1 "$LOADER" status --check eth0 >"$LAB/check-D-hold" 2>&1
    rc=$?
    m1=$(marker_stat dr1 eth0 marked_packets)
    owner=$(owner_is dr1 && echo yes || echo NO)
    FO_HOLD="daemon stopped 5 s: status --check exit $rc ($(head -1 "$LAB/check-D-hold")), dr1 master: $owner, dr1 marked $((m1 - m0)) packet(s) meanwhile"
    log "event D: $FO_HOLD"
    [ "$rc" -eq 0 ] || problems+=("status --check failed (exit $rc) after the daemon's SIGTERM: the datapath must stay")
    [ "$owner" = yes ] || problems+=("dr1 gave up the VIP after its daemon stopped: the check must still pass")
    [ $((m1 - m0)) -gt 0 ] || problems+=("dr1 marked nothing after its daemon stopped")
}

cont_client() { if [ "$1" = A ]; then echo client; else echo "client-${1,,}"; fi; } # cont_client EVENT

# bounce_sampler FILE STOPFILE: "time bounced-SYNs-so-far" every 0.5 s (when loops happen)
bounce_sampler() {
    while [ ! -e "$2" ]; do
        echo "$(now) $(($(counter dr1 4 web-bounce) + $(counter dr2 4 web-bounce)))"
        sleep 0.5
    done >"$1"
}

# event_run A|B DESCRIPTION MARKING: one failover and return under continuous traffic, then
# a steady check after the return.
event_run() {
    local ev=$1 desc=$2 marking=$3 stop=$LAB/stop-$1 res=$LAB/cont-$1 pid spid t_ev t_sw t_back t_sw2
    local problems=()
    log "----- event $ev: $desc"
    baseline_take
    rm -f "$stop"
    client_loop "cont-$ev-web" "$stop" "$(cont_client "$ev")" >"$res" &
    pid=$!
    bounce_sampler "$LAB/bounce-$ev" "$stop" &
    spid=$!
    sleep "$STEADY"
    local faults0 scriptfails0
    faults0=$(grep -c 'Entering FAULT STATE' "$LAB/keepalived-dr1.log")
    scriptfails0=$(grep -c 'VRRP_Script(chk_lvs_ebpf) failed' "$LAB/keepalived-dr1.log")
    [ "$ev" = D ] && health_hold
    t_ev=$(now)
    event_do "$ev" away
    t_sw=$(wait_owner dr2 20) || problems+=("the VIP did not move to dr2 within 20 s")
    log "event $ev at $t_ev: VIP on dr2's eth0 at ${t_sw:-never}"
    if [ "$ev" = D ]; then
        inns dr1 "$LOADER" status --check eth0 >"$LAB/check-D-away" 2>&1
        log "event D: status --check on dr1 now: exit $? ($(head -1 "$LAB/check-D-away"))"
        [ "$(grep -c 'Entering FAULT STATE' "$LAB/keepalived-dr1.log")" -gt "$faults0" ] || problems+=("dr1's keepalived did not enter FAULT")
        [ "$(grep -c 'VRRP_Script(chk_lvs_ebpf) failed' "$LAB/keepalived-dr1.log")" -gt "$scriptfails0" ] || problems+=("dr1's keepalived did not see chk_lvs_ebpf fail")
        grep -E 'chk_lvs_ebpf|FAULT' "$LAB/keepalived-dr1.log" | tail -4 | sed 's/^/[lvs]   keepalived dr1: /'
    fi
    sleep "$STEADY"
    t_back=$(now)
    event_do "$ev" back
    t_sw2=$(wait_owner dr1 20) || problems+=("the VIP did not come back to dr1 within 20 s")
    log "dr1 back at $t_back: VIP on dr1's eth0 at ${t_sw2:-never}"
    sleep "$STEADY"
    touch "$stop"
    wait "$pid" "$spid"
    ipvs_settle
    log "event $ev: failed connections (start end id reason):"
    awk '$4 == "fail"' "$res" | sed 's/^/[lvs]   /'
    log "event $ev: bounced SYNs over time: $(awk '{ if ($2 != last) printf "%s=%s ", $1, $2; last = $2 }' "$LAB/bounce-$ev")"

    # The switch windows: from 3 s before the event (a connection in flight then may fail)
    # to GRACE after VRRP moved the VIP. Failures and bounces belong there and nowhere else.
    local w1a w1b w2a w2b
    w1a=$(awk -v t="$t_ev" 'BEGIN { print t - 3 }')
    w1b=$(awk -v t="${t_sw:-$t_back}" -v g="$GRACE" 'BEGIN { print t + g }')
    w2a=$(awk -v t="$t_back" 'BEGIN { print t - 3 }')
    w2b=$(awk -v t="${t_sw2:-$(now)}" -v g="$GRACE" 'BEGIN { print t + g }')
    local total ok f_away f_back f_else ok_away ok_back gap_away gap_back
    read -r total ok f_away f_back f_else ok_away ok_back gap_away gap_back <<<"$(awk \
        -v a1="$w1a" -v b1="$w1b" -v a2="$w2a" -v b2="$w2b" -v sw="${t_sw:-0}" -v bk="$t_back" -v sw2="${t_sw2:-0}" '
        { n++ }
        $4 == "ok" {
            ok++
            e[ok] = $2
            if ($1 > sw && $1 < bk) oka++
            if ($1 > sw2) okb++
        }
        $4 == "fail" { if ($1 >= a1 && $1 <= b1) fa++; else if ($1 >= a2 && $1 <= b2) fb++; else fe++ }
        END {
            # longest time without a successful answer around each switch (the client is sequential)
            for (i = 2; i <= ok; i++) {
                d = e[i] - e[i - 1]
                if (e[i] >= a1 && e[i - 1] <= b1 && d > g1) g1 = d
                if (e[i] >= a2 && e[i - 1] <= b2 && d > g2) g2 = d
            }
            printf "%d %d %d %d %d %d %d %.1f %.1f\n", n, ok, fa, fb, fe, oka, okb, g1, g2
        }' "$res")"
    local switch back_switch b_away b_back b_else
    switch=$(awk -v a="$t_ev" -v b="${t_sw:-}" 'BEGIN { if (b == "") print "-"; else printf "%.1f", b - a }')
    back_switch=$(awk -v a="$t_back" -v b="${t_sw2:-}" 'BEGIN { if (b == "") print "-"; else printf "%.1f", b - a }')
    read -r b_away b_back b_else <<<"$(awk -v a1="$w1a" -v b1="$w1b" -v a2="$w2a" -v b2="$w2b" '
        { d = $2 - last; last = $2; if (d <= 0) next
          if ($1 >= a1 && $1 <= b1 + 1) ba += d; else if ($1 >= a2 && $1 <= b2 + 1) bb += d; else be += d }
        END { printf "%d %d %d\n", ba, bb, be }' "$LAB/bounce-$ev")"
    [ "$f_else" -eq 0 ] || problems+=("$f_else connections failed away from the switches")
    [ "$ok_away" -gt 0 ] || problems+=("no connection succeeded while dr2 was master")
    [ "$ok_back" -gt 0 ] || problems+=("no connection succeeded after dr1 came back")
    [ "$b_else" -eq 0 ] || problems+=("$b_else SYNs crossed twice away from the switches: a loop in steady state")
    local dup
    dup=$(for d in "${DIRS[@]}"; do grep "^cont-$ev-web-" "$LAB/served-$d.log"; done | sort | uniq -d | wc -l)
    [ "$dup" -eq 0 ] || problems+=("$dup requests served twice")

    # Crossings each way; the marking against iptables over the whole run, on both directors.
    local x12 x21 d p m want pe wantp other otherp dr2_marked dr2_sched dr1_peer parts=() flooded=()
    x12=$(counter dr2 4 web-from-dr1-new)
    x21=$(counter dr1 4 web-from-dr2-new)
    for d in "${DIRS[@]}"; do
        p=$([ "$d" = dr1 ] && echo dr2 || echo dr1)
        want=$(counter "$d" 4 web-nonpeer-pkts)
        wantp=$(counter "$d" 4 "web-from-$p-pkts")
        other=$(other_count "$d" web-other-nonpeer)
        otherp=$(other_count "$d" web-other-peer)
        flooded+=("$d $((other + otherp))")
        if [ "$marking" = lvs-ebpf ] && [ "$ev" = D ] && [ "$d" = dr1 ]; then
            # detached and attached again: new maps, new counters (the steady check after
            # the return compares them exactly)
            parts+=("$d detached and attached again (new counters); iptables+flooded $((want + other)) non-peer")
            continue
        elif [ "$marking" = lvs-ebpf ]; then
            m=$(marker_stat "$d" eth0 marked_packets)
            pe=$(marker_stat "$d" eth0 peer_packets)
            [ "${pe:-x}" = "$((wantp + otherp))" ] || problems+=("$d's marker counted ${pe:-?} peer packets, iptables $wantp (+$otherp flooded)")
            want=$((want + other))
        else
            m=$(counter "$d" 4 web-mark)
            pe="-"
        fi
        parts+=("$d marked ${m:-?} (iptables+flooded ${want}), peer ${pe:-?} (iptables+flooded $((wantp + otherp)))")
        [ "${m:-x}" = "$want" ] || problems+=("$d marked ${m:-?} packets, iptables counted $want non-peer packets")
        [ "$d" = dr2 ] && dr2_marked=$m
        [ "$d" = dr1 ] && dr1_peer=$wantp
    done
    dr2_sched=$(ipvs_conns dr2 "FWM 4")
    [ "${dr2_marked:-0}" -gt 0 ] || problems+=("dr2 marked nothing while it was master")
    [ "$dr2_sched" -gt 0 ] || problems+=("dr2's fwmark service scheduled nothing while dr2 was master")
    if [ "$ev" = A ] && [ "${dr1_peer:-0}" -eq 0 ]; then
        problems+=("dr1 saw no packets from dr2 (dr2 never forwarded to dr1)")
    fi
    EXTRA[${FO_PFX}failover-$ev]="event $ev, marking over the run: $(join_by '; ' "${parts[@]}"); dr2's fwmark service scheduled $dr2_sched; frames flooded to a director not addressed to it: $(join_by ', ' "${flooded[@]}")"
    if [ "$ev" = D ]; then
        EXTRA[${FO_PFX}failover-$ev]+="; before the detach: $FO_HOLD; back-sw: dr1's daemon ready ${DAEMON_READY_S[dr1]:-?} s after its start, then the check's rise (2 x 2 s) and preemption"
    fi
    log "event $ev: $total connections, $ok ok; failed: $f_away around the switch, $f_back around the return, $f_else elsewhere; VRRP switch ${switch} s (back ${back_switch} s); no answer for ${gap_away} s / ${gap_back} s; crossings dr1->dr2 $x12, dr2->dr1 $x21; bounced $b_away / $b_back / $b_else"

    # After the return: marks follow the MACs again (a steady check, exact counts).
    baseline_take
    S_CLIENT[web]=probe-${ev,,}
    run_clients "${FO_PFX}after-$ev" "$TAIL"
    ipvs_settle
    evaluate "${FO_PFX}after-$ev" "$marking" fwmark web "$(since "$t_ev")"
    S_CLIENT[web]=client
    baseline_clear
    local tail_verdict=${VERDICT[${FO_PFX}after-$ev]}

    local verdict
    if [ ${#problems[@]} -eq 0 ]; then
        verdict="ok: VIP moved in ${switch} s, back in ${back_switch} s; $f_away + $f_back connections failed around the switches, none elsewhere; no SYN crossed twice outside the switches ($b_away + $b_back around them); marks followed the MACs"
    else
        verdict="FAIL: $(join_by ';' "${problems[@]}")"
        FAILED=$((FAILED + 1))
    fi
    VERDICT[${FO_PFX}failover-$ev]=$verdict
    FO_EVENTS+=("$FO_PFX$ev")
    FO_ROW[$FO_PFX$ev]=$(printf '%-5s %-24s %-8s %5s %5s %9s %6s %7s %9s %8s %8s %8s %9s %-6s' \
        "$ev" "$desc" "$marking" "$total" "$ok" "$f_away/$f_back/$f_else" "$switch" "$back_switch" \
        "$gap_away/$gap_back" "$x12/$x21" "$b_away/$b_back/$b_else" "${dr2_marked:-?}" "$dr2_sched" \
        "$([[ $tail_verdict == cured* ]] && echo cured || echo FAIL)")
    log "${FO_PFX}failover-$ev: $verdict"
}

failover_phase() { # failover_phase lvs-ebpf|iptables
    local marking=$1 t0
    t0=$(now)
    log "===== $SCENARIO: phase $marking (failover under traffic)"
    lab_reset
    build_lab || { phase_fail failover "could not build the lab"; return; }
    counters_install
    otherhost_install || { phase_fail failover "nft netdev counters rejected"; return; }
    FO_PFX=$([ "$marking" = lvs-ebpf ] && echo "" || echo "ipt-")
    if [ "$marking" = lvs-ebpf ]; then
        markers_start || { phase_fail failover "lvs-loader attach failed (see above)"; return; }
    else
        mark_iptables || { phase_fail failover "iptables marking rules rejected"; return; }
    fi
    KA_TRACK=$([ "$marking" = lvs-ebpf ] && echo 1 || echo 0)
    ipvs_start fwmark || { phase_fail failover "IPVS could not be configured"; return; }
    phase_ready || { phase_fail failover "VRRP did not elect dr1"; return; }
    local ev
    for ev in $(tr ',' ' ' <<<"$EVENTS"); do
        case $ev in
        A) event_run A "stop keepalived on DR1" "$marking" ;;
        B) event_run B "DR1's eth0 down" "$marking" ;;
        R) if [ "$marking" = lvs-ebpf ]; then repair_run; fi ;;
        D) if [ "$marking" = lvs-ebpf ]; then event_run D "marker detached on DR1" "$marking"; fi ;;
        *) phase_fail "failover-$ev" "unknown event (A, B, R, D)" ;;
        esac
    done
    KA_TRACK=0
    log "failover phase ($marking): $(since "$t0") s"
}

# R: someone removes the marker's hook on DR1, the master, while the client connects: the
# clsact qdisc (netlink mode) or the TCX link (bpftool link detach). The daemon re-hooks it.
# Meanwhile client packets reach DR1 unmarked: no fwmark service takes them, DR1 serves them
# itself (the VIP is on its lo), so nothing fails and nothing loops; what counts is how long
# the hole lasts (the daemon's own "repaired ... in N ms", and the time until `status
# --check` passes again, polled) and that every SYN DR1 forwarded crossed once.
FO_REPAIR=""
repair_run() {
    local stop=$LAB/stop-R res=$LAB/cont-R pid spid t_ev t_ok mode prog link what i problems=()
    local t_start
    t_start=$(now)
    log "----- event R: the marker's hook removed on DR1 (the master) under traffic"
    read -r mode prog <<<"$(sed -n 's/.*eth0: attached (\([a-z]*\), prog id \([0-9]*\).*/\1 \2/p' "$LAB/dr1/daemon.log" | tail -1)"
    baseline_take
    rm -f "$stop"
    client_loop "cont-R-web" "$stop" "$(cont_client R)" >"$res" &
    pid=$!
    bounce_sampler "$LAB/bounce-R" "$stop" &
    spid=$!
    sleep 3
    local reps0
    reps0=$(grep -c 'repaired' "$LAB/dr1/daemon.log")
    if [ "$mode" = tcx ]; then
        link=$(inns dr1 bpftool -j link show | jq -r --argjson p "${prog:-0}" '.[] | select(.prog_id == $p) | .id' | head -1)
        t_ev=$(now)
        inns dr1 bpftool link detach id "${link:-0}" || problems+=("bpftool link detach id ${link:-?} failed (prog ${prog:-?})")
        what="TCX link $link detached (bpftool)"
    else
        t_ev=$(now)
        inns dr1 tc qdisc del dev eth0 clsact || problems+=("tc qdisc del dev eth0 clsact failed")
        what="clsact qdisc deleted (tc)"
    fi
    t_ok=""
    for i in $(seq 1 100); do
        if inns dr1 "$LOADER" status --check eth0 >/dev/null 2>&1; then
            t_ok=$(now)
            break
        fi
        sleep 0.05
    done
    [ -n "$t_ok" ] || problems+=("status --check did not pass again within ~10 s")
    # The evidence is the client's, the daemon's and iptables' (read at once): no IPVS
    # settling needed. Short, so that CI can afford it.
    sleep $((STEADY / 2))
    touch "$stop"
    wait "$pid" "$spid"
    local rep_line rep_ms seen total ok failed dup x12 x21 by2 bounced m want other unmarked
    rep_line=$(grep 'repaired' "$LAB/dr1/daemon.log" | tail -n +$((reps0 + 1)) | head -1)
    rep_ms=$(sed -n 's/.*repaired ([a-z]*) in \([0-9]*\) ms.*/\1/p' <<<"$rep_line")
    log "event R: $what at $t_ev; daemon: ${rep_line:-no repair logged}"
    seen=$(awk -v a="$t_ev" -v b="${t_ok:-}" 'BEGIN { if (b == "") print "-"; else printf "%.2f", b - a }')
    [ -n "$rep_ms" ] || problems+=("the daemon logged no repair")
    [ -n "$rep_ms" ] && [ "$rep_ms" -lt 1000 ] || problems+=("the daemon's repair took ${rep_ms:-?} ms (must be < 1 s)")
    total=$(wc -l <"$res")
    ok=$(awk '$4 == "ok"' "$res" | wc -l)
    failed=$((total - ok))
    [ "$failed" -eq 0 ] || problems+=("$failed connections failed")
    dup=$(for d in "${DIRS[@]}"; do grep "^cont-R-web-" "$LAB/served-$d.log"; done | sort | uniq -d | wc -l)
    [ "$dup" -eq 0 ] || problems+=("$dup requests served twice")
    x12=$(counter dr2 4 web-from-dr1-new)
    x21=$(counter dr1 4 web-from-dr2-new)
    by2=$(awk '$4 == "ok" && $5 == "dr2"' "$res" | wc -l)
    bounced=$(($(counter dr1 4 web-bounce) + $(counter dr2 4 web-bounce)))
    [ "$bounced" -eq 0 ] || problems+=("$bounced SYNs crossed twice")
    [ "$x21" -eq 0 ] || problems+=("$x21 SYNs came from dr2 (the backup)")
    [ "$x12" -eq "$by2" ] || problems+=("$x12 SYNs crossed dr1->dr2 for $by2 connections dr2 served (must be 1 each)")
    m=$(marker_stat dr1 eth0 marked_packets)
    want=$(counter dr1 4 web-nonpeer-pkts)
    other=$(other_count dr1 web-other-nonpeer)
    unmarked=$((want + other - ${m:-0}))
    [ "$unmarked" -ge 0 ] || problems+=("dr1's marker marked ${m:-?}, more than iptables saw ($want+$other)")
    local verdict
    if [ ${#problems[@]} -eq 0 ]; then
        verdict="ok: $what, the daemon re-hooked it in $rep_ms ms (status --check passed again after $seen s); $ok/$total connections ok; $unmarked packet(s) reached dr1 unmarked meanwhile and were served by dr1 itself; every SYN dr1 forwarded crossed once ($x12 for $by2), none bounced"
    else
        verdict="FAIL: $(join_by ';' "${problems[@]}")"
        FAILED=$((FAILED + 1))
    fi
    VERDICT[repair-R]=$verdict
    FO_REPAIR=$(printf '%-5s %-30s %5s %5s %6s %10s %8s %8s %9s %7s' \
        R "$what" "$total" "$ok" "$failed" "${rep_ms:-?}" "$seen" "$unmarked" "$x12/$by2" "$bounced")
    log "repair-R: $verdict"
    log "event R took $(since "$t_start") s"
}

report_extra() {
    local ev
    echo "Failover under continuous connections ($STEADY s of traffic before the event, after the switch and after the return):"
    printf '%-5s %-24s %-8s %5s %5s %9s %6s %7s %9s %8s %8s %8s %9s %-6s\n' \
        event what marking conns ok "failed" switch back-sw no-ans "x12/x21" bounced DR2-mark DR2-sched after
    for ev in "${FO_EVENTS[@]}"; do echo "${FO_ROW[$ev]}"; done
    echo "  failed: connections that failed around the switch to DR2 / around DR1's return / elsewhere (must be"
    echo "  0); switch / back-sw: seconds from the event / the return until VRRP had moved the VIP; no-ans: the"
    echo "  longest time around the switch without a successful answer; x12/x21: SYNs crossing dr1->dr2 /"
    echo "  dr2->dr1; bounced: SYNs that crossed twice (TTL) around the switch / the return / elsewhere (must be"
    echo "  0); DR2-mark / DR2-sched: packets DR2 marked / connections DR2's fwmark service scheduled; after:"
    echo "  the steady check after DR1's return ($TAIL connections, exact counts)."
    if [ -n "$FO_REPAIR" ]; then
        echo "The marker's hook removed on DR1 (the master) under continuous connections; the daemon repairs it:"
        printf '%-5s %-30s %5s %5s %6s %10s %8s %8s %9s %7s\n' \
            event what conns ok failed "repair-ms" "check-s" unmarked "x12/by-2" bounced
        echo "$FO_REPAIR"
        echo "  repair-ms: the daemon's own repair time (its log); check-s: until \`status --check\` passed again"
        echo "  (polled); unmarked: packets DR1 received meanwhile without a mark (served by DR1 itself, no"
        echo "  IPVS); x12/by-2: SYNs crossing dr1->dr2 / connections dr2 served (equal: one crossing each)."
    fi
    if [ -n "${FO_HOLD:-}" ]; then echo "Event D, before the detach: $FO_HOLD"; fi
}

for phase in $(tr ',' ' ' <<<"${LVS_ARG_phases:-before,lvs-ebpf}"); do
    case $phase in
    before) run_phase before none ;;
    lvs-ebpf) failover_phase lvs-ebpf ;;
    iptables) failover_phase iptables ;;
    *) phase_fail "$phase" "unknown phase (before, iptables, lvs-ebpf)" ;;
    esac
done
lab_reset
scenario_report \
    "VRRP failover on kernel $(uname -r): keepalived VRRP (DR1 master 150, DR2 backup 100, unicast, advert_int 1)" \
    "moves VIP $VIP between the directors' eth0; both have it on lo. IPVS rr over both, configured by $IPVS_BY," \
    "health checks every ${KA_DELAY} s (inhibit_on_failure). before: $N sequential connections; lvs-ebpf: the marker run as the" \
    "daemon, keepalived tracking 'lvs-loader status --check eth0' (vrrp_script), events ${EVENTS//,/, }."
[ "$FAILED" -eq 0 ]
