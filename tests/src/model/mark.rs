//! xt_MARK, the recipe's target, written from the kernel's `mark_tg`
//! (`skb->mark = (skb->mark & ~info->mask) ^ info->mark`) and from how libxt_MARK turns
//! the command line into `info` (`--set-xmark V/M`: mark V, mask M; `--set-mark V[/M]`:
//! mark V, mask V|M, M defaulting to 0xffffffff).

use lvs_loader::config::Vip;

/// One xt_MARK operation: `skb->mark = (skb->mark & !mask) ^ value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkOp {
    pub value: u32,
    pub mask: u32,
}

impl MarkOp {
    /// Every bit of `skb->mark` (`--set-mark V`, and a VIP without `mark_mask`).
    pub const FULL_MASK: u32 = u32::MAX;

    /// What a VIP's rule does: `--set-xmark mark/mark_mask`.
    pub const fn of(vip: &Vip) -> Self {
        Self {
            value: vip.mark,
            mask: vip.mark_mask,
        }
    }

    /// The mark a packet leaves the rule with, arriving with `pre`.
    pub const fn apply(self, pre: u32) -> u32 {
        (pre & !self.mask) ^ self.value
    }

    /// `self`, then `next`, as one operation (MARK does not end the chain: a packet that
    /// matches two rules gets both, in rule order).
    /// `(((p & !m1) ^ v1) & !m2) ^ v2 = (p & !(m1 | m2)) ^ ((v1 & !m2) ^ v2)`.
    pub const fn then(self, next: Self) -> Self {
        Self {
            value: (self.value & !next.mask) ^ next.value,
            mask: self.mask | next.mask,
        }
    }

    /// The MARK target's options for this operation, as `lvs-loader export` writes them:
    /// `--set-mark V` for the full mask, else `--set-xmark V/M`.
    pub fn iptables_args(self) -> [String; 2] {
        if self.mask == Self::FULL_MASK {
            ["--set-mark".into(), format!("{:#x}", self.value)]
        } else {
            [
                "--set-xmark".into(),
                format!("{:#x}/{:#x}", self.value, self.mask),
            ]
        }
    }
}

/// The mark a packet leaves with after `op` (`None`: untouched), arriving with `pre`.
pub fn after(op: Option<MarkOp>, pre: u32) -> u32 {
    op.map_or(pre, |op| op.apply(pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `then` is the two rules applied one after the other, for value bits inside and
    /// outside either mask.
    #[test]
    fn then_is_sequential_application() {
        let ops = [
            MarkOp {
                value: 0x3,
                mask: MarkOp::FULL_MASK,
            },
            MarkOp {
                value: 0x12,
                mask: 0xff,
            },
            MarkOp {
                value: 0x10000,
                mask: 0xff0000,
            },
            MarkOp {
                value: 0x103,
                mask: 0xff,
            },
            MarkOp {
                value: 0x5,
                mask: 0,
            },
            MarkOp {
                value: 0x8000_0000,
                mask: 0xc000_00f0,
            },
        ];
        for pre in [0, 0x77, 0x5aa5_c33c, u32::MAX, 0x8000_0100] {
            for a in ops {
                for b in ops {
                    assert_eq!(a.then(b).apply(pre), b.apply(a.apply(pre)), "{a:?} {b:?}");
                }
            }
        }
    }
}
