//! `status`: the truth about every attachment under a pin root, in every namespace.
//!
//! Here: what `status` reports ([`StatusEntry`], [`State`]). `collect`: reading each
//! attachment's pins, lock and hook into one; `locate`: where the namespaces of the pins
//! are, and running code in them.

mod collect;
mod locate;

pub use collect::{list, one};
pub(crate) use locate::{NsLoc, here, locate};

use std::path::Path;

use serde::{Serialize, Serializer};

use crate::{
    hook::{HookEntry, Mode, Order},
    ifname::IfName,
    netns::NetnsId,
    text,
};

/// The state of one attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The program is on the interface's ingress hook, in its namespace.
    Ok,
    /// Pinned, but the program is not on the hook (filter, qdisc or link removed).
    NotHooked,
    /// The interface no longer exists (and the program runs nowhere).
    InterfaceGone,
    /// An interface of that name exists, but it is a new one without the program.
    Recreated,
    /// The interface (with the program, TCX) is now in another namespace.
    Moved,
    /// The namespace no longer exists: the pins only hold kernel memory
    /// (`detach --orphans` frees them).
    NamespaceGone,
    /// An attach or detach was interrupted (the next command finishes or undoes it).
    Interrupted,
    /// Another lvs-loader is changing it right now.
    Busy,
    /// The pins are unreadable or not lvs-loader's.
    Broken,
    /// No namespace cookie (Linux < 5.14) and not on the hook: maybe another namespace's.
    Unverified,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotHooked => "not hooked",
            Self::InterfaceGone => "interface gone",
            Self::Recreated => "interface recreated",
            Self::Moved => "moved",
            Self::NamespaceGone => "namespace gone",
            Self::Interrupted => "interrupted",
            Self::Busy => "busy",
            Self::Broken => "broken pins",
            Self::Unverified => "unverified",
        }
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The namespace of an attachment.
#[derive(Clone, Debug, Serialize)]
pub struct NetnsInfo {
    pub inode: u64,
    pub cookie: Option<u64>,
    /// `/run/netns` name, or a path that reaches it; `None` when it is gone.
    pub name: Option<String>,
    pub current: bool,
}

/// One attachment.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    pub interface: IfName,
    pub netns: NetnsInfo,
    /// Whether the namespace is the caller's.
    pub current_netns: bool,
    pub state: State,
    /// What the state means here (where it moved, who is busy with it, ...).
    pub detail: Option<String>,
    pub mode: Option<Mode>,
    pub ifindex: u32,
    pub program_id: Option<u32>,
    pub vips: u32,
    /// VIP slots of the attachment's maps (sized from its config; grown by a reload).
    pub capacity: u32,
    pub peers: u32,
    /// The live generation's config (escaped).
    pub config_path: Option<String>,
    pub config_digest: String,
    /// Serial of the live generation (counts applies).
    pub generation: u64,
    pub attached_at: u64,
    pub reloaded_at: u64,
    /// Escaped.
    pub pin_dir: String,
    /// Everything on the interface's ingress hook, in run order (when reachable).
    pub hooks: Vec<HookEntry>,
    /// Where the program should sit on the hook (`first`, `last`, `priority N`).
    pub order: Option<Order>,
    /// What runs before the program on the hook (when it is there).
    pub in_front: Vec<HookEntry>,
    /// Why the program is not where `order` wants it, if it is not.
    pub order_problem: Option<String>,
    /// The live config's file, unescaped (for `status --check`).
    #[serde(skip)]
    pub config_file: Option<std::path::PathBuf>,
    /// The live config's SHA-256.
    #[serde(skip)]
    pub digest: Option<[u8; 32]>,
}

impl StatusEntry {
    fn blank(id: NetnsId, ns: &NsLoc, ifname: &IfName, dir: &Path) -> Self {
        Self {
            interface: ifname.clone(),
            netns: NetnsInfo {
                inode: id.inode,
                cookie: id.cookie,
                name: match ns {
                    NsLoc::Here => None,
                    NsLoc::There(f) => Some(f.label.clone()),
                    NsLoc::Gone => None,
                },
                current: matches!(ns, NsLoc::Here),
            },
            current_netns: matches!(ns, NsLoc::Here),
            state: State::Broken,
            detail: None,
            mode: None,
            ifindex: 0,
            program_id: None,
            vips: 0,
            capacity: 0,
            peers: 0,
            config_path: None,
            config_digest: String::new(),
            generation: 0,
            attached_at: 0,
            reloaded_at: 0,
            pin_dir: text::escape_path(dir),
            hooks: Vec::new(),
            order: None,
            in_front: Vec::new(),
            order_problem: None,
            config_file: None,
            digest: None,
        }
    }

    /// Whether the program is on the hook of the interface of its name, in its
    /// namespace (not merely "renamed" or "moved" with it).
    pub fn is_hooked_here(&self) -> bool {
        self.is_hooked_on(&self.hooks)
    }

    pub fn is_ok(&self) -> bool {
        self.state == State::Ok
    }

    fn is_hooked_on(&self, hooks: &[HookEntry]) -> bool {
        self.program_id.is_some() && hooks.iter().any(|h| h.prog_id == self.program_id)
    }
}
