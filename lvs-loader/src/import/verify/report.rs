//! The result of `import --verify` and how it is printed: the frames the two sides mark
//! differently (the first [`MAX_SHOWN`]), and where iptables-nft disagrees with
//! iptables-legacy.

/// One frame marked differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub summary: String,
    /// `iptables-legacy` or `iptables-nft`.
    pub reference: &'static str,
    pub iptables: u32,
    pub lvs_ebpf: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub frames: usize,
    /// Dropped by the rules (a DROP rule, a hot-dropping match): nothing to compare.
    pub dropped: usize,
    pub marked: usize,
    pub differences: Vec<Difference>,
    /// VLAN-tagged frames were left out: no 802.1Q support in this kernel.
    pub vlan_skipped: bool,
    /// The iptables back ends the rules ran on.
    pub references: Vec<&'static str>,
    /// Frames iptables-nft marks differently from iptables-legacy (the reference, whose
    /// xt-match semantics lvs-ebpf follows): (summary, legacy mark, nft mark).
    pub backend_differences: Vec<(String, u32, u32)>,
    /// Back ends left out, and why.
    pub skipped: Vec<String>,
}

impl Report {
    pub fn all_alike(&self) -> bool {
        self.differences.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let dropped = if self.dropped > 0 {
            format!(" ({} dropped by the rules, not compared)", self.dropped)
        } else {
            String::new()
        };
        if self.all_alike() {
            s.push_str(&format!(
                "verify: {} frames, all marked alike ({} marked){dropped}: iptables-legacy and lvs-ebpf\n",
                self.frames, self.marked
            ));
        } else {
            s.push_str(&format!(
                "verify: {} of {} frames marked differently{dropped}; the first ones:\n",
                self.differences.len(),
                self.frames
            ));
            for d in self.differences.iter().take(MAX_SHOWN) {
                s.push_str(&format!(
                    "  {}: {} {:#x}, lvs-ebpf {:#x}\n",
                    d.summary, d.reference, d.iptables, d.lvs_ebpf
                ));
            }
        }
        if self.references.contains(&"iptables-nft") {
            if self.backend_differences.is_empty() {
                s.push_str("verify: iptables-nft marks every frame like iptables-legacy\n");
            } else {
                s.push_str(&format!(
                    "verify: iptables-nft marks {} frame(s) unlike iptables-legacy (lvs-ebpf follows iptables-legacy's xt matches; nft reads ports of non-first fragments):\n",
                    self.backend_differences.len()
                ));
                for (sum, l, n) in self.backend_differences.iter().take(MAX_SHOWN / 2) {
                    s.push_str(&format!(
                        "  {sum}: iptables-legacy {l:#x}, iptables-nft {n:#x}\n"
                    ));
                }
            }
        }
        for sk in &self.skipped {
            s.push_str(&format!("verify: {sk}\n"));
        }
        if self.vlan_skipped {
            s.push_str("verify: VLAN-tagged frames left out (no 802.1Q support in this kernel: modprobe 8021q)\n");
        }
        s
    }
}

/// Differences printed at most.
pub const MAX_SHOWN: usize = 20;
