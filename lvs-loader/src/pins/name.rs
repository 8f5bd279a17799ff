//! The names in a namespace directory: an attachment's interface name, encoded for bpffs,
//! and the suffix of an attach or a detach in flight.

use crate::ifname::IfName;

/// An interface name as a bpffs name: `.` -> `:_`.
fn encode(ifname: &IfName) -> Vec<u8> {
    let mut v = Vec::with_capacity(ifname.as_bytes().len() + 2);
    for &b in ifname.as_bytes() {
        if b == b'.' {
            v.extend_from_slice(b":_");
        } else {
            v.push(b);
        }
    }
    v
}

/// The inverse of [`encode`]; `None` for anything it can't have produced.
fn decode(name: &[u8]) -> Option<IfName> {
    let mut v = Vec::with_capacity(name.len());
    let mut it = name.iter();
    while let Some(&b) = it.next() {
        match b {
            b':' => match it.next() {
                Some(b'_') => v.push(b'.'),
                _ => return None,
            },
            b'.' => return None,
            b => v.push(b),
        }
    }
    IfName::new(v).ok()
}

/// What a directory entry under a namespace directory is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// `<ifname>`: a published attachment.
    Published(IfName),
    /// `<ifname>:new`: an attach that has not been published.
    Staging(IfName),
    /// `<ifname>:old`: a detach that has not finished.
    Removing(IfName),
}

impl Entry {
    pub fn parse(name: &[u8]) -> Option<Self> {
        if let Some(i) = name.strip_suffix(b":new") {
            return decode(i).map(Self::Staging);
        }
        if let Some(i) = name.strip_suffix(b":old") {
            return decode(i).map(Self::Removing);
        }
        decode(name).map(Self::Published)
    }

    pub fn ifname(&self) -> &IfName {
        match self {
            Self::Published(i) | Self::Staging(i) | Self::Removing(i) => i,
        }
    }

    pub fn file_name(&self) -> Vec<u8> {
        let mut v = encode(self.ifname());
        match self {
            Self::Published(_) => {}
            Self::Staging(_) => v.extend_from_slice(b":new"),
            Self::Removing(_) => v.extend_from_slice(b":old"),
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let i = IfName::new("eth0").unwrap();
        assert_eq!(Entry::parse(b"eth0"), Some(Entry::Published(i.clone())));
        assert_eq!(Entry::parse(b"eth0:new"), Some(Entry::Staging(i.clone())));
        assert_eq!(Entry::parse(b"eth0:old"), Some(Entry::Removing(i.clone())));
        assert_eq!(Entry::Staging(i.clone()).file_name(), b"eth0:new");
        // Not interface names, not in-flight names: ignored.
        for bad in [
            &b"eth0:x"[..],
            b":new",
            b".",
            b"..",
            b"a:b:new",
            b"0123456789abcdef",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
        // Non-UTF-8 names are interface names too.
        assert!(matches!(
            Entry::parse(b"e\xff:old"),
            Some(Entry::Removing(_))
        ));
        // Dots (VLAN interfaces) are encoded: bpffs refuses `.` in names.
        let vlan = IfName::new("bond0.100").unwrap();
        assert_eq!(Entry::Published(vlan.clone()).file_name(), b"bond0:_100");
        assert_eq!(
            Entry::parse(b"bond0:_100"),
            Some(Entry::Published(vlan.clone()))
        );
        assert_eq!(Entry::parse(b"bond0:_100:new"), Some(Entry::Staging(vlan)));
        assert_eq!(
            Entry::parse(b":_:_:_"),
            Some(Entry::Published(IfName::new("...").unwrap()))
        );
        for bad in [&b"bond0.100"[..], b"a:", b"a:x", b"a::_"] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }
}
