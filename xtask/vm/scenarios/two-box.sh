#!/usr/bin/bash
# two-box: the seed write-up's setup. Two directors that are each other's real server
# (LVS-DR "localnode" active-active), IPVS configured by keepalived, a client, one segment.
#
#   client 172.17.85.100 ---+
#   DR1    172.17.85.54  ---+--- br0           VIP 172.17.85.56:80
#   DR2    172.17.85.55  ---+
#
# DR1 owns the VIP (on eth0, answers ARP); DR2 has it on lo (arp_ignore=1, arp_announce=2).
# Phases: before (no marking: the loop), iptables (the write-up's fix, the reference),
# lvs-ebpf (the marker as its systemd unit runs it).
SCENARIO=two-box
N_DEFAULT=100
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP=172.17.85.56
DIRS=(dr1 dr2)
service web 4 tcp "$VIP" 80 eth0 client dr1 web-internal
service_mark web dr1 3
service_mark web dr2 4

build_lab() {
    segment br0 || return 1
    node client && nic client eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 || return 1
    director_sysctls dr1 eth0
    director_sysctls dr2 eth0
    vip_add dr1 eth0 "$VIP"
    vip_add dr2 lo "$VIP"
    http_service dr1
    http_service dr2
    icmp_te_counter client
    wait_http client 172.17.85.54 172.17.85.55
}

run_phases before,iptables,lvs-ebpf
lab_reset
scenario_report \
    "Two-box LVS localnode (DR) on kernel $(uname -r): $N sequential connections per phase to VIP $VIP:80," \
    "IPVS rr over both directors, configured by $IPVS_BY. DR1 172.17.85.54 00:0c:29:dc:d2:6b (VIP on eth0)," \
    "DR2 172.17.85.55 00:0c:29:57:88:ce (VIP on lo), client 172.17.85.100."
[ "$FAILED" -eq 0 ]
