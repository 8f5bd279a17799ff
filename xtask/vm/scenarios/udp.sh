#!/usr/bin/bash
# udp: the two-box setup with a DNS-like UDP service on port 53 (one datagram per query,
# each from a fresh client port: one IPVS connection per query). The loop is the same as for
# TCP (IPVS schedules a forwarded datagram again), seen by the client as lost answers.
SCENARIO=udp
. /usr/lib/lvs-vm/scenarios/lab.sh
. /usr/lib/lvs-vm/scenarios/lvs.sh
. /usr/lib/lvs-vm/scenarios/phase.sh

VIP=172.17.85.56
DIRS=(dr1 dr2)
service dns 4 udp "$VIP" 53 eth0 client dr1 dns-echo
service_mark dns dr1 3
service_mark dns dr2 4

build_lab() {
    segment br0 || return 1
    node client && nic client eth0 02:00:ac:11:55:64 br0 172.17.85.100/24 || return 1
    node dr1 && nic dr1 eth0 00:0c:29:dc:d2:6b br0 172.17.85.54/24 || return 1
    node dr2 && nic dr2 eth0 00:0c:29:57:88:ce br0 172.17.85.55/24 || return 1
    director_sysctls dr1 eth0
    director_sysctls dr2 eth0
    vip_add dr1 eth0 "$VIP"
    vip_add dr2 lo "$VIP"
    udp_service dr1 "$VIP" 53
    udp_service dr2 "$VIP" 53
    icmp_te_counter client
}

run_phases before,lvs-ebpf
lab_reset
scenario_report \
    "UDP on kernel $(uname -r): $N sequential queries per phase to VIP $VIP:53/udp (a DNS-like echo that" \
    "answers from the VIP and logs each query id), IPVS rr over both directors (UDP, no health check)," \
    "configured by $IPVS_BY. DR1 owns the VIP, DR2 has it on lo."
[ "$FAILED" -eq 0 ]
