//! What a rule's `-j`/`-g` does to the mark and the traversal.

use super::{Target, values::parse_mark_mask};

const NEUTRAL_TARGETS: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "TRACE",
    "TOS",
    "DSCP",
    "TTL",
    "HL",
    "TCPMSS",
    "ECN",
    "CHECKSUM",
    "CLASSIFY",
    "IDLETIMER",
    "LED",
    "AUDIT",
    "SECMARK",
    "CONNSECMARK",
    "RATEEST",
    "NOTRACK",
    "CT",
];

pub(super) fn target(t: &str, opts: &[String], goto: bool) -> Result<Target, String> {
    if goto {
        return Ok(Target::Goto(t.to_owned()));
    }
    Ok(match t {
        "MARK" => {
            let (op, v) = match opts {
                [op, v, ..] => (op.as_str(), v.as_str()),
                _ => return Err("-j MARK without --set-mark/--set-xmark".into()),
            };
            let Some((value, mask)) = parse_mark_mask(v) else {
                return Err(format!(
                    "MARK {op} {:?}: not a mark",
                    crate::text::excerpt(v, 32)
                ));
            };
            match op {
                "--set-xmark" => Target::Mark {
                    value,
                    mask: mask.unwrap_or(u32::MAX),
                },
                "--set-mark" => Target::Mark {
                    value,
                    mask: value | mask.unwrap_or(u32::MAX),
                },
                _ => Target::OtherMark(format!("-j MARK {}", opts.join(" "))),
            }
        }
        "CONNMARK" if !opts.iter().any(|o| o == "--restore-mark") => {
            Target::Neutral(format!("CONNMARK {}", opts.join(" ")))
        }
        "CONNMARK" | "TPROXY" => Target::OtherMark(format!("-j {t} {}", opts.join(" "))),
        "RETURN" => Target::Return,
        "ACCEPT" => Target::Accept,
        "DROP" | "REJECT" => Target::Drop,
        t if NEUTRAL_TARGETS.contains(&t) => Target::Neutral(t.to_owned()),
        t if t
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && t.chars().any(|c| c.is_ascii_uppercase())
            && !opts.is_empty() =>
        {
            Target::Other(format!("-j {t} {}", opts.join(" ")))
        }
        t => Target::Jump(t.to_owned()),
    })
}
