#!/usr/bin/bash
# ipv6: the two-box setup over IPv6. keepalived's fwmark service in the inet6 family
# (`virtual_server fwmark N { ip_family inet6 ... }`), the marker's VIP an IPv6 address.
#
#   client 2001:db8:85::100 ---+
#   DR1    2001:db8:85::54  ---+--- br0        VIP [2001:db8:85::56]:80
#   DR2    2001:db8:85::55  ---+
#
# DR1 owns the VIP (on eth0, answers neighbour solicitations); DR2 has it on lo, where
# Linux does not answer solicitations for it arriving on eth0.
SCENARIO=ipv6
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP6=2001:db8:85::56
DIRS=(dr1 dr2)
service web6 6 tcp "$VIP6" 80 eth0 client dr1 web-v6
service_mark web6 dr1 3
service_mark web6 dr2 4

build_lab() {
    segment br0 || return 1
    node client && nic client eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 2001:db8:85::100/64 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 2001:db8:85::54/64 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 2001:db8:85::55/64 || return 1
    director_sysctls dr1 eth0
    director_sysctls dr2 eth0
    vip_add dr1 eth0 "$VIP6"
    vip_add dr2 lo "$VIP6"
    http_service dr1
    http_service dr2
    icmp_te_counter client
    wait_http client 2001:db8:85::54 2001:db8:85::55
}

run_phases before,lvs-ebpf
lab_reset
scenario_report \
    "IPv6 on kernel $(uname -r): $N sequential connections per phase to VIP [$VIP6]:80, IPVS rr over both" \
    "directors (fwmark services with ip_family inet6), configured by $IPVS_BY. DR1 owns the VIP, DR2 has it on lo."
[ "$FAILED" -eq 0 ]
