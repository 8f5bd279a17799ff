#!/usr/bin/bash
# three-box: N-box active-active. Three directors, each a real server of all three, each
# marker with the other two as peers; IPVS rr over the three.
#
#   client 172.17.85.100 ---+
#   DR1    172.17.85.54  ---+
#   DR2    172.17.85.55  ---+--- br0           VIP 172.17.85.56:80 (owned by DR1)
#   DR3    172.17.85.57  ---+
#
# Without marking a connection DR1 hands to DR2 or DR3 is scheduled again there, and can go
# round all three until the TTL runs out; with lvs-ebpf every connection is served exactly
# once and nothing crosses more than once.
SCENARIO=three-box
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP=172.17.85.56
DIRS=(dr1 dr2 dr3)
service web 4 tcp "$VIP" 80 eth0 client dr1 web
service_mark web dr1 3
service_mark web dr2 4
service_mark web dr3 5

build_lab() {
    segment br0 || return 1
    node client && nic client eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 || return 1
    node dr3 && nic dr3 eth0 00:0c:29:3a:5c:e1 br0 172.17.85.57/24 || return 1
    local d
    for d in "${DIRS[@]}"; do
        director_sysctls "$d" eth0
        http_service "$d"
    done
    vip_add dr1 eth0 "$VIP"
    vip_add dr2 lo "$VIP"
    vip_add dr3 lo "$VIP"
    icmp_te_counter client
    wait_http client 172.17.85.54 172.17.85.55 172.17.85.57
}

run_phases before,lvs-ebpf
lab_reset
scenario_report \
    "Three-box LVS localnode (DR) on kernel $(uname -r): $N sequential connections per phase to VIP $VIP:80," \
    "IPVS rr over three directors (DR1 .54 owns the VIP, DR2 .55 and DR3 .57 have it on lo), each marker with" \
    "the other two directors' MACs as peers, IPVS configured by $IPVS_BY."
[ "$FAILED" -eq 0 ]
