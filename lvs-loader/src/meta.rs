//! [`Meta`]: the typed view of the pinned `LVS_META` record ([`AttachMeta`]).

use std::{
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
    path::{Path, PathBuf},
};

use lvs_ebpf_common::{
    AttachMeta, CLSACT_CREATED, CLSACT_FOUND, CLSACT_MAYBE, GenerationMeta, HOOK_FIRST, HOOK_LAST,
    HOOK_PRIORITY, META_MAGIC, META_PATH_LEN, META_VERSION, MODE_NETLINK, MODE_TCX,
};

use crate::{
    error::{Error, Result, ShownPath},
    hook::{Mode, Order},
    ifname::IfName,
    netns::NetnsId,
};

/// Whether the clsact qdisc is ours to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clsact {
    /// It was there before us: never removed.
    Found,
    /// lvs-loader created it: removed with our filter when nothing else is on it.
    Created,
    /// Recorded before adding it; a crash may have come before or after. Treated like
    /// `Created`.
    Maybe,
}

/// The cls_bpf filter's address, chosen before the filter is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NlHook {
    pub priority: u16,
    pub handle: u32,
    pub clsact: Clsact,
}

/// The config installed in one generation of the maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// 0: never held a config.
    pub serial: u64,
    pub applied_at: u64,
    pub vips: u32,
    pub peers: u32,
    /// Work after the flip still to be done (see `journal`).
    pub pending: bool,
    pub digest: [u8; 32],
    pub config_path: Option<PathBuf>,
}

/// What lvs-loader records about an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub mode: Mode,
    pub ifindex: u32,
    pub ifname: IfName,
    pub netns: NetnsId,
    pub attached_at: u64,
    /// Netlink mode only.
    pub nl: Option<NlHook>,
    /// Where the program goes on the hook; re-hooks and repairs keep it.
    pub order: Order,
    pub generations: [Generation; 2],
}

/// Why a META record can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("no lvs-loader record (bad magic)")]
    Magic,
    #[error(
        "written by another lvs-loader version (record version {0}, this one reads {META_VERSION})"
    )]
    Version(u32),
    #[error("unknown hook mode {0}")]
    Mode(u32),
    #[error("bad interface name in the record")]
    Name,
    #[error("unknown hook order {0}")]
    Order(u32),
}

impl Generation {
    fn from_raw(g: &GenerationMeta) -> Self {
        let n = (g.path_len as usize).min(META_PATH_LEN);
        Self {
            serial: g.serial,
            applied_at: g.applied_at,
            vips: g.vip_count,
            peers: g.peer_count,
            pending: g.pending != 0,
            digest: g.digest,
            config_path: (n > 0)
                .then(|| PathBuf::from(std::ffi::OsString::from_vec(g.config_path[..n].to_vec()))),
        }
    }

    fn to_raw(&self) -> Result<GenerationMeta> {
        let mut g = GenerationMeta {
            serial: self.serial,
            applied_at: self.applied_at,
            vip_count: self.vips,
            peer_count: self.peers,
            pending: u32::from(self.pending),
            digest: self.digest,
            ..GenerationMeta::default()
        };
        if let Some(p) = &self.config_path {
            let b = p.as_os_str().as_bytes();
            check_path_len(p)?;
            g.config_path[..b.len()].copy_from_slice(b);
            g.path_len = b.len() as u32;
        }
        Ok(g)
    }
}

/// A config path must fit whole (it is never truncated).
pub fn check_path_len(p: &Path) -> Result<()> {
    let len = p.as_os_str().as_bytes().len();
    if len >= META_PATH_LEN {
        return Err(Error::PathTooLong {
            path: ShownPath(p.to_path_buf()),
            len,
            max: META_PATH_LEN - 1,
        });
    }
    Ok(())
}

impl Meta {
    pub fn from_raw(m: &AttachMeta) -> Result<Self, MetaError> {
        if m.magic != META_MAGIC {
            return Err(MetaError::Magic);
        }
        if m.version != META_VERSION {
            return Err(MetaError::Version(m.version));
        }
        let mode = match m.mode {
            MODE_TCX => Mode::Tcx,
            MODE_NETLINK => Mode::Netlink,
            other => return Err(MetaError::Mode(other)),
        };
        let n = (m.ifname_len as usize).min(m.ifname.len());
        let ifname = IfName::new(&m.ifname[..n]).map_err(|_| MetaError::Name)?;
        let nl = (mode == Mode::Netlink).then_some(NlHook {
            priority: m.nl_priority as u16,
            handle: m.nl_handle,
            clsact: match m.clsact {
                CLSACT_FOUND => Clsact::Found,
                CLSACT_CREATED => Clsact::Created,
                _ => Clsact::Maybe,
            },
        });
        let order = match (m.hook_order, u16::try_from(m.hook_priority)) {
            (HOOK_FIRST, _) => Order::First,
            (HOOK_LAST, _) => Order::Last,
            (HOOK_PRIORITY, Ok(p)) if p > 0 => Order::Priority(p),
            (other, _) => return Err(MetaError::Order(other)),
        };
        Ok(Self {
            mode,
            order,
            ifindex: m.ifindex,
            ifname,
            netns: NetnsId {
                inode: m.netns_ino,
                cookie: (m.netns_cookie != 0).then_some(m.netns_cookie),
            },
            attached_at: m.attached_at,
            nl,
            generations: [
                Generation::from_raw(&m.generations[0]),
                Generation::from_raw(&m.generations[1]),
            ],
        })
    }

    pub fn to_raw(&self) -> Result<AttachMeta> {
        let mut m = AttachMeta {
            magic: META_MAGIC,
            version: META_VERSION,
            mode: match self.mode {
                Mode::Tcx => MODE_TCX,
                Mode::Netlink => MODE_NETLINK,
            },
            ifindex: self.ifindex,
            netns_ino: self.netns.inode,
            netns_cookie: self.netns.cookie.unwrap_or(0),
            attached_at: self.attached_at,
            hook_order: match self.order {
                Order::First => HOOK_FIRST,
                Order::Last => HOOK_LAST,
                Order::Priority(_) => HOOK_PRIORITY,
            },
            hook_priority: match self.order {
                Order::Priority(p) => u32::from(p),
                _ => 0,
            },
            generations: [self.generations[0].to_raw()?, self.generations[1].to_raw()?],
            ..AttachMeta::default()
        };
        if let Some(nl) = self.nl {
            m.nl_priority = u32::from(nl.priority);
            m.nl_handle = nl.handle;
            m.clsact = match nl.clsact {
                Clsact::Found => CLSACT_FOUND,
                Clsact::Created => CLSACT_CREATED,
                Clsact::Maybe => CLSACT_MAYBE,
            };
        }
        let b = self.ifname.as_bytes();
        m.ifname[..b.len()].copy_from_slice(b);
        m.ifname_len = b.len() as u32;
        Ok(m)
    }

    /// The generation with the highest serial that is `live` (the caller reads
    /// `LVS_CONTROL`), i.e. what the datapath marks with.
    pub fn generation(&self, live: u32) -> &Generation {
        &self.generations[live as usize & 1]
    }

    /// The next serial to give a generation.
    pub fn next_serial(&self) -> u64 {
        self.generations.iter().map(|g| g.serial).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            mode: Mode::Netlink,
            ifindex: 7,
            ifname: IfName::new(b"et\xffh0").unwrap(),
            netns: NetnsId {
                inode: 4026532000,
                cookie: Some(42),
            },
            attached_at: 1_700_000_000,
            nl: Some(NlHook {
                priority: 49151,
                handle: 1,
                clsact: Clsact::Maybe,
            }),
            order: Order::Priority(7),
            generations: [
                Generation::default(),
                Generation {
                    serial: 3,
                    applied_at: 5,
                    vips: 100_000,
                    peers: 2,
                    pending: true,
                    digest: [9; 32],
                    config_path: Some(PathBuf::from(format!("/etc/{}", "d/".repeat(1000)))),
                },
            ],
        }
    }

    #[test]
    fn round_trips_exactly() {
        let m = sample();
        assert_eq!(Meta::from_raw(&m.to_raw().unwrap()), Ok(m.clone()));
        let mut t = m;
        t.mode = Mode::Tcx;
        t.nl = None;
        for order in [Order::First, Order::Last] {
            t.order = order;
            assert_eq!(Meta::from_raw(&t.to_raw().unwrap()), Ok(t.clone()));
        }
    }

    #[test]
    fn long_paths_are_kept_whole_or_refused() {
        let m = sample();
        let raw = m.to_raw().unwrap();
        let back = Meta::from_raw(&raw).unwrap();
        assert_eq!(
            back.generations[1]
                .config_path
                .as_ref()
                .unwrap()
                .as_os_str()
                .len(),
            5 + 2000
        );
        let mut too_long = m;
        too_long.generations[0].config_path = Some(PathBuf::from("/".repeat(META_PATH_LEN)));
        assert!(matches!(too_long.to_raw(), Err(Error::PathTooLong { .. })));
    }

    #[test]
    fn foreign_records_are_refused() {
        let mut raw = sample().to_raw().unwrap();
        raw.version = 1;
        assert_eq!(Meta::from_raw(&raw), Err(MetaError::Version(1)));
        raw.version = META_VERSION;
        raw.hook_order = 7;
        assert_eq!(Meta::from_raw(&raw), Err(MetaError::Order(7)));
        raw.hook_order = HOOK_PRIORITY;
        raw.hook_priority = 0x1_0000;
        assert_eq!(Meta::from_raw(&raw), Err(MetaError::Order(HOOK_PRIORITY)));
        raw.hook_priority = 0;
        assert_eq!(Meta::from_raw(&raw), Err(MetaError::Order(HOOK_PRIORITY)));
        raw.hook_order = HOOK_FIRST;
        raw.mode = 9;
        assert_eq!(Meta::from_raw(&raw), Err(MetaError::Mode(9)));
        assert_eq!(
            Meta::from_raw(&AttachMeta::default()),
            Err(MetaError::Magic)
        );
    }

    #[test]
    fn serials_increase() {
        assert_eq!(sample().next_serial(), 4);
    }
}
