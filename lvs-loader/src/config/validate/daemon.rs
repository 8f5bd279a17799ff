//! The optional `[daemon]` table: what `lvs-loader daemon` manages when the command line
//! names no interface (`interfaces = ["eth0", "eth1"]`).

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use super::{Validator, Value, key_name};
use crate::{config::sections::Section, ifname::IfName};

/// At most this many interfaces in `[daemon] interfaces`.
pub const MAX_DAEMON_INTERFACES: usize = 1024;

const EXAMPLE: &str = "an array of interface names (interfaces = [\"eth0\", \"eth1\"])";

impl Validator {
    /// A section whose header starts with `daemon`: `[daemon]` is the table,
    /// `[daemon.x]` and `[[daemon]]` are mistakes.
    pub(super) fn daemon_section(
        &mut self,
        sec: &Section,
        table: &DeTable<'_>,
        path: &[String],
        plain_table: bool,
    ) {
        if !plain_table {
            return self.problems.push(
                sec.start,
                "daemon",
                "must be a table: write [daemon] (single brackets), once",
            );
        }
        if path.len() > 1 {
            return self.problems.push(
                sec.start,
                format!("daemon.{}", key_name(&path[1])),
                "unknown key: the [daemon] table has interfaces",
            );
        }
        if let Some(DeValue::Table(t)) = table.get("daemon").map(|v| v.get_ref()) {
            self.daemon_table(sec, t, sec.start);
        }
    }

    /// `daemon = { ... }` before the first header.
    pub(super) fn daemon_inline(&mut self, sec: &Section, v: &Value<'_>, at: usize) {
        match v.get_ref() {
            DeValue::Table(t) => self.daemon_table(sec, t, at),
            other => self.problems.push(
                at,
                "daemon",
                format!(
                    "must be a table: write a [daemon] table, found {}",
                    super::a(other)
                ),
            ),
        }
    }

    fn daemon_table(&mut self, sec: &Section, t: &DeTable<'_>, at: usize) {
        if let Some(first) = self.daemon_at {
            return self.problems.push_with_line_of(
                at,
                "daemon",
                "a second [daemon] table; the first is",
                first,
            );
        }
        self.daemon_at = Some(at);
        for (k, v) in t.iter() {
            if k.get_ref() == "interfaces" {
                self.daemon_interfaces(sec, v);
            } else {
                self.problems.push(
                    sec.file_offset(k.span().start),
                    format!("daemon.{}", key_name(k.get_ref())),
                    "unknown key: the [daemon] table has interfaces",
                );
            }
        }
    }

    fn daemon_interfaces(&mut self, sec: &Section, v: &Value<'_>) {
        let field = "daemon.interfaces";
        let DeValue::Array(items) = v.get_ref() else {
            return self.type_error(sec, v, field, EXAMPLE);
        };
        if items.len() > MAX_DAEMON_INTERFACES {
            return self.problems.push(
                sec.file_offset(v.span().start),
                field,
                format!(
                    "{} interfaces, more than the {MAX_DAEMON_INTERFACES} one daemon manages",
                    items.len()
                ),
            );
        }
        let mut seen: HashMap<IfName, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let f = format!("{field}[{}]", i + 1);
            let at = sec.file_offset(item.span().start);
            let Some(s) = self.string(sec, item, f.as_str(), "an interface name (\"eth0\")") else {
                continue;
            };
            match IfName::new(s) {
                Ok(name) => {
                    if let Some(&first) = seen.get(&name) {
                        self.problems.push_with_line_of(
                            at,
                            f,
                            format!("{name} is listed twice, first"),
                            first,
                        );
                    } else {
                        seen.insert(name.clone(), at);
                        self.daemon.interfaces.push(name);
                    }
                }
                Err(e) => self.problems.push(at, f, e.to_string()),
            }
        }
    }
}
