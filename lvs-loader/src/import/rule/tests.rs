//! Unit tests of the rule parser.

use super::*;

fn p(args: &str) -> Result<Rule, String> {
    let fam = if args.contains("::") {
        Family::V6
    } else {
        Family::V4
    };
    parse(&RawRule {
        line: 1,
        family: fam,
        table: "mangle".into(),
        chain: "PREROUTING".into(),
        args: super::super::lex::shell_words(args).unwrap(),
        text: args.into(),
    })
}

#[test]
fn the_recipe_in_iptables_save_form() {
    let r = p("-d 172.17.85.56/32 -p tcp -m tcp --dport 80 -m mac ! --mac-source 00:0C:29:57:88:CE -m comment --comment \"web vip\" -j MARK --set-xmark 0x3/0xffffffff").unwrap();
    assert_eq!(
        r.dst.as_ref().unwrap().value,
        Net {
            addr: "172.17.85.56".parse().unwrap(),
            len: 32
        }
    );
    assert!(!r.dst.as_ref().unwrap().negated);
    assert_eq!(r.proto, Some(Neg::new(6, false)));
    assert_eq!(r.dports, Some(Neg::new(vec![(80, 80)], false)));
    assert!(r.needs_ports);
    assert_eq!(r.macs, [Neg::new([0, 0x0c, 0x29, 0x57, 0x88, 0xce], true)]);
    assert_eq!(r.comment.as_deref(), Some("web vip"));
    assert_eq!(
        r.target,
        Target::Mark {
            value: 3,
            mask: u32::MAX
        }
    );
    assert!(r.unknown.is_empty());
}

#[test]
fn set_mark_forms() {
    assert_eq!(
        p("-j MARK --set-mark 0x3").unwrap().target,
        Target::Mark {
            value: 3,
            mask: u32::MAX
        }
    );
    assert_eq!(
        p("-j MARK --set-mark 3/0xff").unwrap().target,
        Target::Mark {
            value: 3,
            mask: 0xff
        }
    );
    assert_eq!(
        p("-j MARK --set-mark 0x100/0xff").unwrap().target,
        Target::Mark {
            value: 0x100,
            mask: 0x1ff
        }
    );
    assert_eq!(
        p("-j MARK --set-xmark 0x3/0xff").unwrap().target,
        Target::Mark {
            value: 3,
            mask: 0xff
        }
    );
    assert_eq!(
        p("-j MARK --set-mark 010").unwrap().target,
        Target::Mark {
            value: 8,
            mask: u32::MAX
        }
    );
    assert!(matches!(
        p("-j MARK --or-mark 1").unwrap().target,
        Target::OtherMark(_)
    ));
    assert!(p("-j MARK").is_err());
    assert!(p("-j MARK --set-mark x").is_err());
}

#[test]
fn old_mac_negation_and_multiport() {
    let r = p("-d 10.0.0.1 -p udp -m multiport --dports 53,8000:8100,:10 -m mac --mac-source ! 00:0c:29:57:88:ce -j MARK --set-mark 5").unwrap();
    assert_eq!(r.dports.unwrap().value, [(53, 53), (8000, 8100), (0, 10)]);
    assert!(r.macs[0].negated);
    assert_eq!(r.dst.unwrap().value.len, 32);
}

#[test]
fn implicit_protocol_module() {
    let r = p("-d 10.0.0.1 -p tcp --dport 443 -j MARK --set-mark 5").unwrap();
    assert_eq!(r.dports.unwrap().value, [(443, 443)]);
    assert!(r.needs_ports);
    assert!(p("-d 10.0.0.1 --dport 443 -j ACCEPT").is_err());
    assert!(p("-d 10.0.0.1 -p icmp -m tcp -j ACCEPT").is_err());
}

#[test]
fn unmodelled_matches_are_kept_as_text() {
    let r = p("-s 10.0.0.0/8 -d 10.0.0.1 -p tcp -m tcp --dport 80 --tcp-flags SYN,ACK SYN -m conntrack --ctstate NEW,ESTABLISHED ! -d 10.0.0.2 -j MARK --set-mark 1").unwrap();
    assert_eq!(
        r.unknown,
        [
            "-s 10.0.0.0/8",
            "-m tcp --tcp-flags SYN,ACK SYN",
            "-m conntrack --ctstate NEW,ESTABLISHED"
        ]
    );
    // The later ! -d replaced the first (iptables would refuse two -d; we keep the last).
    assert!(r.dst.unwrap().negated);
    let r = p("-i eth+ -j RETURN").unwrap();
    assert_eq!(r.unknown.len(), 1);
    let r = p("-d 10.0.0.0/255.255.255.0 -j RETURN").unwrap();
    assert_eq!(r.dst.unwrap().value.len, 24);
    let r = p("-d 10.0.0.0/255.0.255.0 -j RETURN").unwrap();
    assert_eq!(r.unknown.len(), 1);
}

#[test]
fn targets() {
    assert_eq!(p("-j RETURN").unwrap().target, Target::Return);
    assert_eq!(p("-j ACCEPT").unwrap().target, Target::Accept);
    assert_eq!(p("-j DROP").unwrap().target, Target::Drop);
    assert_eq!(
        p("-j LVS_VIP1").unwrap().target,
        Target::Jump("LVS_VIP1".into())
    );
    assert_eq!(
        p("-g LVS_VIP1").unwrap().target,
        Target::Goto("LVS_VIP1".into())
    );
    assert_eq!(
        p("-j LOG --log-prefix x").unwrap().target,
        Target::Neutral("LOG".into())
    );
    assert!(matches!(
        p("-j CONNMARK --restore-mark").unwrap().target,
        Target::OtherMark(_)
    ));
    assert!(matches!(
        p("-j CONNMARK --save-mark").unwrap().target,
        Target::Neutral(_)
    ));
    assert_eq!(p("-p tcp").unwrap().target, Target::None);
}

#[test]
fn nets() {
    let n = Net {
        addr: "10.1.2.0".parse().unwrap(),
        len: 24,
    };
    assert!(n.contains("10.1.2.255".parse().unwrap()));
    assert!(!n.contains("10.1.3.0".parse().unwrap()));
    assert!(!n.is_host());
    let h = Net {
        addr: "2001:db8::1".parse().unwrap(),
        len: 128,
    };
    assert!(h.is_host());
    assert!(h.contains("2001:db8::1".parse().unwrap()));
    assert!(!h.contains("2001:db8::2".parse().unwrap()));
    let all = Net {
        addr: "0.0.0.0".parse().unwrap(),
        len: 0,
    };
    assert!(all.contains("1.2.3.4".parse().unwrap()));
    assert_eq!(parse_port_range("100:10").unwrap(), (10, 100));
    assert_eq!(parse_port_range("1024:").unwrap(), (1024, 65535));
    assert!(parse_port_range("http").is_err());
    assert!(parse_port_range("70000").is_err());
}
