//! [`IfName`]: an interface name as the kernel accepts it, validated before it is used
//! as a path component, a netlink attribute or a C string.

use std::{
    ffi::{CString, OsStr, OsString},
    fmt,
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
};

use crate::text;

/// `IFNAMSIZ - 1`: the longest name the kernel accepts.
pub const MAX_IFNAME_LEN: usize = 15;

/// A valid Linux interface name: 1-15 bytes, not `.` or `..`, no `/`, `:`, whitespace or
/// control characters (the kernel's `dev_valid_name`, plus controls). Other bytes, UTF-8
/// or not, are allowed: the kernel allows them, so the tool must be able to manage such an
/// interface.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(Vec<u8>);

/// Why a string is not an interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfNameError {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name \"{name}\" is {len} bytes long; Linux allows at most {MAX_IFNAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("\"{0}\" is not an interface name")]
    Dots(String),
    #[error(
        "interface name \"{name}\" contains {what}, which Linux does not allow in interface names"
    )]
    BadChar { name: String, what: &'static str },
}

impl IfName {
    pub fn new(name: impl AsRef<[u8]>) -> Result<Self, IfNameError> {
        let b = name.as_ref();
        let shown = || text::excerpt_bytes(b, text::EXCERPT_CHARS);
        if b.is_empty() {
            return Err(IfNameError::Empty);
        }
        if b.len() > MAX_IFNAME_LEN {
            return Err(IfNameError::TooLong {
                name: shown(),
                len: b.len(),
            });
        }
        if b == b"." || b == b".." {
            return Err(IfNameError::Dots(shown()));
        }
        for &c in b {
            let what = match c {
                b'/' => "'/'",
                b':' => "':'",
                b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' => "whitespace",
                0 => "a NUL byte",
                c if c < 0x20 || c == 0x7f => "a control character",
                _ => continue,
            };
            return Err(IfNameError::BadChar {
                name: shown(),
                what,
            });
        }
        Ok(Self(b.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as a single path component (validated: no `/`, not `.`/`..`).
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    pub fn to_cstring(&self) -> CString {
        // Validated: no NUL byte inside.
        CString::new(self.0.clone()).unwrap_or_default()
    }

    /// The name as UTF-8 when it is (aya's attach API takes `&str`).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Escaped for printing.
    pub fn escaped(&self) -> String {
        text::escape_bytes(&self.0)
    }
}

impl TryFrom<&OsStr> for IfName {
    type Error = IfNameError;
    fn try_from(s: &OsStr) -> Result<Self, IfNameError> {
        Self::new(s.as_bytes())
    }
}

impl TryFrom<OsString> for IfName {
    type Error = IfNameError;
    fn try_from(s: OsString) -> Result<Self, IfNameError> {
        Self::new(s.into_vec())
    }
}

impl std::str::FromStr for IfName {
    type Err = IfNameError;
    fn from_str(s: &str) -> Result<Self, IfNameError> {
        Self::new(s)
    }
}

/// Escaped, so it can go into any message.
impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IfName(\"{}\")", self.escaped())
    }
}

impl serde::Serialize for IfName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_str(&self.escaped()),
        }
    }
}

/// clap value parser for an interface argument, bytes and all (a non-UTF-8 name is a
/// valid kernel name): `#[arg(value_parser = ifname::parse_arg)]`.
#[allow(non_upper_case_globals)]
pub const parse_arg: IfNameParser = IfNameParser;

/// See [`parse_arg`].
#[derive(Clone, Copy, Debug)]
pub struct IfNameParser;

impl clap::builder::TypedValueParser for IfNameParser {
    type Value = IfName;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<IfName, clap::Error> {
        IfName::try_from(value).map_err(|e| {
            let what = arg.map_or_else(|| "IFACE".to_owned(), |a| a.to_string());
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {what}: {e}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_names() {
        for n in [
            "eth0",
            "lo",
            "bond0.100",
            "veth-a_b",
            "x",
            "123456789012345",
            "é1",
            "eth@0",
        ] {
            let i = IfName::new(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(i.as_bytes(), n.as_bytes());
        }
        // Not UTF-8, but a valid kernel name: managed, printed escaped.
        let i = IfName::new(b"eth\xff").unwrap();
        assert_eq!(i.to_string(), "eth\\xff");
        assert_eq!(i.as_str(), None);
    }

    #[test]
    fn rejects_what_the_kernel_rejects_and_controls() {
        assert_eq!(IfName::new(""), Err(IfNameError::Empty));
        assert!(matches!(
            IfName::new("1234567890123456"),
            Err(IfNameError::TooLong { len: 16, .. })
        ));
        assert!(matches!(IfName::new("."), Err(IfNameError::Dots(_))));
        assert!(matches!(IfName::new(".."), Err(IfNameError::Dots(_))));
        for bad in [
            "a/b", "/etc", "../x", "a:1", "a b", "a\tb", "a\nb", "a\rb", "a\x0bb", "a\x0cb",
            "\x1b[31m", "a\x7f", "a\0b",
        ] {
            assert!(
                matches!(IfName::new(bad), Err(IfNameError::BadChar { .. })),
                "{bad:?} accepted"
            );
        }
        // "..." and ".a" are valid names (only "." and ".." are not).
        assert!(IfName::new("...").is_ok());
        assert!(IfName::new(".a").is_ok());
    }

    #[test]
    fn errors_are_escaped_and_bounded() {
        let e = IfName::new("\x1b]0;pwned\x07aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\x1b') && !e.contains('\x07'), "{e}");
        assert!(e.len() < 200, "{e}");
    }
}
