#!/usr/bin/bash
# two-nic: the seed write-up's example in full. Each director has an internal NIC (eth0)
# and an external one (eth1), with a VIP on each segment, two fwmark services per director
# (3/5 on DR1, 4/6 on DR2), and its marker attached to both NICs, each with the peer's MAC
# on *that* segment (the peer's eth0 and eth1 MACs differ).
#
#   internal (br0)                              external (br1)
#   client-int 172.17.85.100 ---+           +--- 119.253.28.100 client-ext
#   DR1 eth0   172.17.85.54  ---+           +--- 119.253.28.16  DR1 eth1
#   DR2 eth0   172.17.85.55  ---+           +--- 119.253.28.17  DR2 eth1
#   VIP 172.17.85.56:80 (mark 3/4)             VIP 119.253.28.6:80 (mark 5/6)
#
# (The write-up's external addresses, 119.253.282.x, are not valid IPv4; 28 stands in for 282.)
SCENARIO=two-nic
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP_INT=172.17.85.56
VIP_EXT=119.253.28.6
DIRS=(dr1 dr2)
service int 4 tcp "$VIP_INT" 80 eth0 client-int dr1 web-internal
service ext 4 tcp "$VIP_EXT" 80 eth1 client-ext dr1 web-external
service_mark int dr1 3
service_mark int dr2 4
service_mark ext dr1 5
service_mark ext dr2 6

build_lab() {
    segment br0 && segment br1 || return 1
    node client-int && nic client-int eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 || return 1
    node client-ext && nic client-ext eth0 02:00:77:fd:1c:64 br1 119.253.28.100/24 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 &&
        nic dr1 eth1 00:0c:29:dc:d2:75 br1 119.253.28.16/24 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 &&
        nic dr2 eth1 00:0c:29:57:88:d8 br1 119.253.28.17/24 || return 1
    director_sysctls dr1 eth0 eth1
    director_sysctls dr2 eth0 eth1
    vip_add dr1 eth0 "$VIP_INT"
    vip_add dr1 eth1 "$VIP_EXT"
    vip_add dr2 lo "$VIP_INT"
    vip_add dr2 lo "$VIP_EXT"
    http_service dr1
    http_service dr2
    icmp_te_counter client-int
    icmp_te_counter client-ext
    wait_http client-int 172.17.85.54 172.17.85.55
    wait_http client-ext 119.253.28.16 119.253.28.17
}

run_phases before,lvs-ebpf
lab_reset
scenario_report \
    "Two NICs on kernel $(uname -r): $N sequential connections per phase and segment, at once, to VIP" \
    "$VIP_INT:80 (internal, eth0) and $VIP_EXT:80 (external, eth1); IPVS rr over both directors' addresses on" \
    "each segment, two fwmark services per director, configured by $IPVS_BY. Markers: DR1 eth0 peer" \
    "00:0c:29:57:88:ce, eth1 peer 00:0c:29:57:88:d8; DR2 eth0 peer 00:0c:29:dc:d2:6b, eth1 peer 00:0c:29:dc:d2:75."
[ "$FAILED" -eq 0 ]
