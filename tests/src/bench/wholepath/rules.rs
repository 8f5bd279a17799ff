//! The rule sets of the netfilter contenders: the LVS-HOWTO iptables recipe (one rule per
//! VIP) and an nftables concatenated map, each with one peer director excluded.

use lvs_loader::config::format_mac;

use crate::bench::workload;

/// The LVS-HOWTO recipe, one rule per VIP, the target VIP's rule last.
pub fn iptables_rules(n: usize, peer: [u8; 6]) -> String {
    let mut s = String::with_capacity(n * 140 + 64);
    s.push_str("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    let mac = format_mac(&peer);
    for v in workload::vips(n, workload::Target::V4) {
        let port = v.port.unwrap_or(0);
        s.push_str(&format!(
            "-A PREROUTING -d {}/32 -p tcp -m tcp --dport {port} -m mac ! --mac-source {mac} -j MARK --set-mark {:#x}\n",
            v.address, v.mark
        ));
    }
    s.push_str("COMMIT\n");
    s
}

/// keepalived-`nftables_ipvs`-style: one rule, a concatenated `daddr . dport` map to
/// marks and a peer set.
pub fn nft_ruleset(n: usize, peer: [u8; 6]) -> String {
    let mut s = String::with_capacity(n * 40 + 512);
    s.push_str("flush ruleset\ntable ip lvsbench {\n");
    s.push_str(&format!(
        "  set peers {{ type ether_addr; elements = {{ {} }} }}\n",
        format_mac(&peer)
    ));
    s.push_str("  map vips {\n    type ipv4_addr . inet_service : mark\n    elements = { ");
    for (i, v) in workload::vips(n, workload::Target::V4).iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!(
            "{} . {} : {:#x}",
            v.address,
            v.port.unwrap_or(0),
            v.mark
        ));
    }
    s.push_str(" }\n  }\n");
    s.push_str(
        "  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n",
    );
    s.push_str(
        "    ether saddr != @peers meta mark set ip daddr . tcp dport map @vips counter\n  }\n}\n",
    );
    s
}
