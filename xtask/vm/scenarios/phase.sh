# shellcheck shell=bash
# One phase of a scenario (sourced after lab.sh and lvs.sh): a fresh lab, a marking, IPVS,
# N client connections per service, then the evidence and the verdict:
#
#   before    no marking, "virtual_server VIP PORT": the loop must show (connections fail,
#             new packets cross back, some bounce: TTL spent by more than one IPVS hop).
#   iptables  the write-up's MARK rules + "virtual_server fwmark M": must cure it.
#   lvs-ebpf  the marker (its systemd unit's command) + "virtual_server fwmark M": must cure it,
#             with the marker's counters equal to what iptables counted for the same packets.
#
# "Cured" is never "all answered" alone: a marker that marks nothing also gets N/N (the entry
# director serves all, no fwmark service scheduled anything) and fails the fwmark checks.

# Connections per phase: lvs.n on the kernel command line, else the scenario's N_DEFAULT
# (100 for two-box, the table the README has always shown; 40 for the others).
N=${LVS_ARG_n:-${N_DEFAULT:-40}}

phase_fail() { # phase_fail PHASE MESSAGE
    VERDICT[$1]="FAIL: $2"
    FAILED=$((FAILED + 1))
    log "phase $1: FAIL: $2"
}

run_phases() { # run_phases DEFAULT-LIST (lvs.phases=a,b on the kernel command line overrides)
    local phase phases
    IFS=',' read -r -a phases <<<"${LVS_ARG_phases:-$1}"
    for phase in "${phases[@]}"; do
        case $phase in
        before) run_phase before none ;;
        iptables) run_phase iptables iptables ;;
        lvs-ebpf) run_phase lvs-ebpf lvs-ebpf ;;
        *) phase_fail "$phase" "unknown phase (before, iptables, lvs-ebpf)" ;;
        esac
    done
}

run_phase() { # run_phase PHASE none|iptables|lvs-ebpf
    local phase=$1 marking=$2 kind=fwmark t0 t
    t0=$(now)
    log "===== $SCENARIO: phase $phase"
    lab_reset
    build_lab || { phase_fail "$phase" "could not build the lab"; return; }
    counters_install
    otherhost_install || { phase_fail "$phase" "nft netdev counters rejected"; return; }
    case $marking in
    none) kind=vip ;;
    iptables) mark_iptables || { phase_fail "$phase" "iptables marking rules rejected"; return; } ;;
    lvs-ebpf)
        if [ -z "$LOADER" ] || ! [ -x "$LOADER" ]; then
            phase_fail "$phase" "no lvs-loader (LVS_LOADER=${LOADER:-unset}): the eBPF cure cannot be shown"
            return
        fi
        markers_start || { phase_fail "$phase" "lvs-loader attach failed (see above)"; return; }
        ;;
    esac
    ipvs_start "$kind" || { phase_fail "$phase" "IPVS could not be configured"; return; }
    if declare -F phase_ready >/dev/null && ! phase_ready; then
        phase_fail "$phase" "the lab did not get ready (see above)"
        return
    fi
    log "IPVS on ${DIRS[0]} (by $IPVS_BY):"
    inns "${DIRS[0]}" ipvsadm -Ln | sed 's/^/[lvs]   /'
    run_clients "$phase"
    ipvs_settle
    for t in "${SVCS[@]}"; do
        evaluate "$phase" "$marking" "$kind" "$t" "$(since "$t0")"
    done
}

run_clients() { # run_clients PHASE [COUNT]: all services' clients at once (each its own client node)
    local phase=$1 count=${2:-$N} t pids=()
    for t in "${SVCS[@]}"; do
        if [ "${S_PROTO[$t]}" = udp ]; then
            client_udp "${S_CLIENT[$t]}" "$phase-$t" "$count" "${S_VIP[$t]}" "${S_PORT[$t]}" >"$LAB/results-$phase-$t" &
        else
            client_tcp "${S_CLIENT[$t]}" "$phase-$t" "$count" "${S_VIP[$t]}" "${S_PORT[$t]}" >"$LAB/results-$phase-$t" &
        fi
        pids+=($!)
    done
    wait "${pids[@]}"
}

label() { if [ ${#SVCS[@]} -gt 1 ]; then echo "$1:$2"; else echo "$1"; fi; } # label PHASE TAG

evaluate() { # evaluate PHASE MARKING KIND TAG SECS
    local phase=$1 marking=$2 kind=$3 t=$4 secs=$5 lbl e d p
    lbl=$(label "$phase" "$t")
    e=${S_ENTRY[$t]}
    local res=$LAB/results-$phase-$t ok failed reasons n
    n=$(wc -l <"$res")
    ok=$(grep -c ' ok ' "$res")
    failed=$(grep -c ' fail ' "$res")
    reasons=$(awk '$2 == "fail" { print $3 }' "$res" | sort | uniq -c | awk '{ printf "%s%s x %s", sep, $1, $2; sep = ", " }')
    # Who served what: every id a client got an answer for was served once, failed ones never.
    local -A served
    local total=0 others_served=0 dup wrong served_list=() all_served=1
    for d in "${DIRS[@]}"; do
        served[$d]=$(grep -c "^$phase-$t-" "$LAB/served-$d.log")
        total=$((total + served[$d]))
        [ "$d" != "$e" ] && others_served=$((others_served + served[$d]))
        [ "${served[$d]}" -gt 0 ] || all_served=0
        served_list+=("${served[$d]}")
    done
    dup=$(for d in "${DIRS[@]}"; do grep "^$phase-$t-" "$LAB/served-$d.log"; done | sort | uniq -d | wc -l)
    wrong=$(for d in "${DIRS[@]}"; do grep "^$phase-$t-" "$LAB/served-$d.log"; done | sort -u |
        grep -v -x -F -f <(awk '$2 == "ok" { print $1 }' "$res") | wc -l)
    # IPVS: what the entry director sent to the others, what the others' services scheduled.
    local fwd=0 others_sched=0 entry_sched
    entry_sched=$(ipvs_conns "$e" "$(svc_key "$t" "$e" "$kind")")
    for d in "${DIRS[@]}"; do
        [ "$d" = "$e" ] && continue
        fwd=$((fwd + $(ipvs_conns "$e" "$(svc_key "$t" "$e" "$kind")" "$(rs_addr "$t" "$d")")))
        others_sched=$((others_sched + $(ipvs_conns "$d" "$(svc_key "$t" "$d" "$kind")")))
    done
    # Crossings: new packets from the entry to the others (legitimate, once each), from any
    # other director (only a loop sends those), and those that crossed more than once.
    local syn_out=0 syn_back=0 bounce=0 fam=${S_FAM[$t]} te ratio
    for d in "${DIRS[@]}"; do
        for p in "${DIRS[@]}"; do
            [ "$p" = "$d" ] && continue
            if [ "$p" = "$e" ]; then
                syn_out=$((syn_out + $(counter "$d" "$fam" "$t-from-$p-new")))
            else
                syn_back=$((syn_back + $(counter "$d" "$fam" "$t-from-$p-new")))
            fi
        done
        bounce=$((bounce + $(counter "$d" "$fam" "$t-bounce")))
    done
    te=$(icmp_te "${S_CLIENT[$t]}")
    ratio=$(awk -v c="$((syn_out + syn_back))" -v n="$fwd" 'BEGIN { if (n > 0) printf "%.1f", c / n; else print "-" }')
    local new=SYN
    [ "${S_PROTO[$t]}" = udp ] && new=datagram
    log "$lbl: client $ok ok, $failed failed${reasons:+ ($reasons)}; served by $(for d in "${DIRS[@]}"; do printf '%s %s ' "$d" "${served[$d]}"; done)"
    log "$lbl: IPVS $e scheduled $entry_sched, sent $fwd to the others; the others' services scheduled $others_sched"
    log "$lbl: ${new}s crossing $e->others $syn_out, from the others $syn_back, bounced $bounce; ICMP time-exceeded at the client $te"
    for d in "${DIRS[@]}"; do
        log "ipvsadm -Ln --stats on $d:"
        inns "$d" ipvsadm -Ln --stats --exact | sed 's/^/[lvs]   /'
        [ -f "$LAB/keepalived-$d.log" ] && grep -i -E 'fail|disabl|enabl|remov' "$LAB/keepalived-$d.log" | tail -5 | sed "s/^/[lvs]   keepalived $d: /"
    done

    local problems=() verdict
    [ "$marking" = iptables ] && check_mark_rules "$t" "$lbl"
    [ "$marking" = lvs-ebpf ] && check_markers "$t" "$lbl"
    if [ "$marking" = none ]; then
        [ "$failed" -gt 0 ] || problems+=("no client connection failed")
        [ "$syn_back" -gt 0 ] || problems+=("no $new came back from another director")
        [ "$bounce" -gt 0 ] || problems+=("no $new crossed more than once")
        [ "$((syn_out + syn_back))" -gt "$fwd" ] || problems+=("crossings $((syn_out + syn_back)) not above the $fwd connections forwarded")
        if [ ${#problems[@]} -eq 0 ]; then
            verdict="loop reproduced: $failed/$n failed${reasons:+ ($reasons)}, $((syn_out + syn_back)) $new crossings for $fwd connections sent to the peers"
        else
            verdict="FAIL: loop NOT reproduced ($(join_by ';' "${problems[@]}"))"
        fi
    else
        problems+=("${MARK_PROBLEMS[@]}")
        [ "$ok" -eq "$n" ] && [ "$n" -gt 0 ] || problems+=("$failed/$n connections failed${reasons:+ ($reasons)}")
        [ "$dup" -eq 0 ] && [ "$wrong" -eq 0 ] && [ "$total" -eq "$ok" ] || problems+=("requests not served exactly once (dup $dup, unexpected $wrong)")
        [ "$all_served" = 1 ] || problems+=("not balanced: served $(join_by / "${served_list[@]}")")
        # UDP: a query whose source port repeats an earlier one's joins that IPVS
        # connection (Conns one short, InPkts still one per query), so count datagrams.
        local entry_in=$entry_sched
        [ "${S_PROTO[$t]}" = udp ] && entry_in=$(ipvs_conns "$e" "$(svc_key "$t" "$e" "$kind")" "" 1)
        [ "$entry_in" -eq "$n" ] || problems+=("$e's fwmark service scheduled $entry_sched of $n connections ($entry_in client packets): client packets not marked")
        [ "$others_sched" -eq 0 ] || problems+=("the other directors' fwmark services scheduled $others_sched connections: packets from $e were marked")
        [ "$syn_back" -eq 0 ] || problems+=("$syn_back ${new}s came from a non-entry director")
        [ "$bounce" -eq 0 ] || problems+=("$bounce ${new}s crossed more than once")
        [ "$syn_out" -eq "$others_served" ] || problems+=("$syn_out $new crossings from $e for $others_served connections the others served")
        if [ ${#problems[@]} -eq 0 ]; then
            verdict="cured: $ok/$n ok, each served once ($(join_by / "${served_list[@]}")), every crossing $new crossed once"
        else
            verdict="FAIL: not cured ($(join_by ';' "${problems[@]}"))"
        fi
    fi
    [[ $verdict == FAIL* ]] && FAILED=$((FAILED + 1))
    VERDICT[$lbl]=$verdict
    local svc_col
    if [ "$kind" = vip ]; then svc_col="${S_PROTO[$t]^^}:${S_PORT[$t]}"; else svc_col="fwmark"; fi
    ROW[$lbl]=$(printf '%-13s %-22s %-7s %4s %6s %-11s %6s %7s %8s %9s %7s %7s %9s %6s' \
        "$lbl" "$(marking_label "$marking")" "$svc_col" "$ok" "$failed" "$(join_by / "${served_list[@]}")" \
        "$fwd" "$syn_out" "$syn_back" "$ratio" "$bounce" "$te" "$others_sched" "$secs")
    ROWS+=("$lbl")
    log "$lbl: $verdict"
}

marking_label() {
    case $1 in
    none) echo "none" ;;
    iptables) echo "iptables mac!peer MARK" ;;
    lvs-ebpf) if [ "$MARKER_RUN" = daemon ]; then echo "lvs-ebpf (daemon)"; else echo "lvs-ebpf (unit, tc)"; fi ;;
    esac
}

MARK_PROBLEMS=()
check_mark_rules() { # check_mark_rules TAG LABEL: MARK rule counters = non-peer packets
    local t=$1 d m want fam=${S_FAM[$1]} parts=()
    MARK_PROBLEMS=()
    for d in "${DIRS[@]}"; do
        m=$(counter "$d" "$fam" "$t-mark")
        want=$(counter "$d" "$fam" "$t-nonpeer-pkts")
        parts+=("$d marked $m (non-peer packets $want)")
        [ "$m" -eq "$want" ] || MARK_PROBLEMS+=("$d's MARK rule marked $m of $want non-peer packets")
    done
    [ "$(counter "${S_ENTRY[$t]}" "$fam" "$t-mark")" -gt 0 ] || MARK_PROBLEMS+=("the entry director marked nothing")
    EXTRA[$2]="iptables MARK rules: $(join_by ', ' "${parts[@]}")"
}

check_markers() { # check_markers TAG LABEL: marker counters = iptables' view of the same packets
    local t=$1 d p m pe want wantp fam=${S_FAM[$1]} ifc=${S_IF[$1]} u parts=() how
    MARK_PROBLEMS=()
    for d in "${DIRS[@]}"; do
        m=$(marker_stat "$d" "$ifc" marked_packets)
        pe=$(marker_stat "$d" "$ifc" peer_packets)
        # The marker on this NIC covers every service of the NIC: sum iptables over them.
        want=0 wantp=0
        for u in "${SVCS[@]}"; do
            [ "${S_IF[$u]}" = "$ifc" ] || continue
            want=$((want + $(counter "$d" "${S_FAM[$u]}" "$u-nonpeer-pkts") + $(other_count "$d" "$u-other-nonpeer")))
            wantp=$((wantp + $(other_count "$d" "$u-other-peer")))
            for p in "${DIRS[@]}"; do
                [ "$p" != "$d" ] && wantp=$((wantp + $(counter "$d" "${S_FAM[$u]}" "$u-from-$p-pkts")))
            done
        done
        if [ -z "$m" ] || [ -z "$pe" ]; then
            MARK_PROBLEMS+=("could not read $d's marker counters (lvs-loader stats $ifc --json)")
            continue
        fi
        parts+=("$d marked $m (iptables+flooded: $want non-peer), peer $pe ($wantp from peers)")
        [ "$m" -eq "$want" ] || MARK_PROBLEMS+=("$d's marker marked $m packets, iptables counted $want non-peer packets")
        [ "$pe" -eq "$wantp" ] || MARK_PROBLEMS+=("$d's marker counted $pe peer packets, iptables $wantp")
        if [ "$d" = "${S_ENTRY[$t]}" ] && [ "$m" -eq 0 ]; then MARK_PROBLEMS+=("the entry director's marker marked nothing"); fi
    done
    how=$(grep -o -m1 'attached ([a-z]*' "$LAB/${S_ENTRY[$t]}/attach-$ifc" 2>/dev/null | cut -d'(' -f2)
    EXTRA[$2]="lvs-ebpf on $ifc (attached via ${how:-?}): $(join_by '; ' "${parts[@]}")"
}

scenario_report() { # scenario_report DESCRIPTION-LINES...: the table, the evidence, the verdicts
    local l
    echo "=== LVS-SCENARIO-REPORT BEGIN $SCENARIO"
    for l in "$@"; do echo "$l"; done
    printf '%-13s %-22s %-7s %4s %6s %-11s %6s %7s %8s %9s %7s %7s %9s %6s\n' \
        phase marking service ok failed "served" fwd "new-out" "new-back" "new/fwd" bounced ICMP-TE peer-sched secs
    for l in "${ROWS[@]}"; do echo "${ROW[$l]}"; done
    echo "  served: connections each director served (${DIRS[*]}); fwd: connections the entry director's IPVS"
    echo "  sent to the others; new-out / new-back: new packets (TCP SYNs, UDP datagrams) to the VIP arriving"
    echo "  from the entry director's MAC / from another director's (only a loop sends those); new/fwd:"
    echo "  crossings per forwarded connection (1.0 = no bounce); bounced: new packets whose TTL shows more"
    echo "  than one IPVS hop; ICMP-TE: time-exceeded errors the client got; peer-sched: connections the"
    echo "  other directors' IPVS services scheduled (0 = nobody re-balanced a forwarded connection)."
    if declare -F report_extra >/dev/null; then report_extra; fi
    for l in "${ROWS[@]}" "${!EXTRA[@]}"; do
        [ -n "${EXTRA[$l]:-}" ] && printf '%-13s %s\n' "$l:" "${EXTRA[$l]}" && unset "EXTRA[$l]"
    done
    for l in "${ROWS[@]}"; do printf '%-13s %s\n' "$l:" "${VERDICT[$l]}"; done
    for l in "${!VERDICT[@]}"; do
        [[ " ${ROWS[*]} " == *" $l "* ]] || printf '%-13s %s\n' "$l:" "${VERDICT[$l]}"
    done
    echo "=== LVS-SCENARIO-REPORT END $SCENARIO"
    for l in "${ROWS[@]}"; do echo "LVS-SCENARIO-VERDICT: $SCENARIO/$l: ${VERDICT[$l]}"; done
    for l in "${!VERDICT[@]}"; do
        [[ " ${ROWS[*]} " == *" $l "* ]] || echo "LVS-SCENARIO-VERDICT: $SCENARIO/$l: ${VERDICT[$l]}"
    done
}
