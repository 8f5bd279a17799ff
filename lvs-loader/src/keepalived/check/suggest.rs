//! `--suggest`: the keepalived blocks for marks that have no `virtual_server fwmark`.

use std::fmt::Write as _;

use super::{
    Fam,
    model::{Keepalived, VsKind},
    vips_label,
};
use crate::{config::Vip, keepalived::parse::Node};

/// Renders a node back as keepalived text.
fn render(out: &mut String, n: &Node, indent: usize) {
    let words: Vec<String> = n
        .words
        .iter()
        .map(|w| {
            if w.contains([' ', '\t', '#', '!', '{', '}']) || w.is_empty() {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect();
    let pad = "    ".repeat(indent);
    if n.has_block {
        let _ = writeln!(out, "{pad}{} {{", words.join(" "));
        for c in &n.children {
            render(out, c, indent + 1);
        }
        let _ = writeln!(out, "{pad}}}");
    } else {
        let _ = writeln!(out, "{pad}{}", words.join(" "));
    }
}

pub(super) fn suggest(out: &mut String, mark: u32, fam: Fam, vips: &[&Vip], k: &Keepalived) {
    let _ = writeln!(out, "# for {}", vips_label(vips));
    // Reuse the body of the old VIP:port service when there is one.
    let old = k.services.iter().find(|s| matches!(s.kind, VsKind::Addr(a, p) if vips.iter().any(|v| v.address == a && (v.port == p || v.port.is_none()))));
    let _ = writeln!(out, "virtual_server fwmark {mark} {{");
    if fam == Fam::Inet6 {
        out.push_str("    ip_family inet6\n");
    }
    match old {
        Some(s) => {
            let _ = writeln!(
                out,
                "    # body of `virtual_server {}` ({}), which this replaces",
                s.node.words[1..].join(" "),
                s.node.loc
            );
            for c in s.node.children.iter().filter(|c| c.keyword() != "protocol") {
                render(out, c, 1);
            }
        }
        None => {
            // No `protocol` and no real-server ports: keepalived ignores both for fwmark
            // services (and warns).
            let (this, peer) = if fam == Fam::Inet6 {
                ("2001:db8::1", "2001:db8::2")
            } else {
                ("192.0.2.1", "192.0.2.2")
            };
            let _ = writeln!(
                out,
                "    delay_loop 6\n    lb_algo rr\n    lb_kind DR\n    real_server {this} {{   # THIS director's address\n        weight 1\n    }}\n    real_server {peer} {{   # the PEER director's address\n        weight 1\n    }}"
            );
        }
    }
    out.push_str("}\n\n");
}
