//! What `attach`, `reload`, `repair` and `detach` report.

use std::path::PathBuf;

use serde::Serialize;

use crate::{
    config::Config,
    hook::{Mode, Order},
    ifname::IfName,
    maps::ApplyReport,
};

/// What `attach`/`reload` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new attachment.
    Attached,
    /// New config on an attachment that was hooked.
    Reloaded,
    /// The program was off its hook (filter, qdisc or link removed, interface
    /// recreated): hooked again, then the config applied.
    #[serde(rename = "re-hooked")]
    Rehooked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Reloaded => "reloaded",
            Self::Rehooked => "re-hooked",
        }
    }
}

/// What `attach` or `reload` did.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub interface: IfName,
    pub action: Action,
    /// Why the program had to be hooked again ([`Action::Rehooked`]).
    pub rehook_reason: Option<String>,
    pub mode: Mode,
    pub program_id: Option<u32>,
    #[serde(serialize_with = "crate::text::serialize_path")]
    pub pin_dir: PathBuf,
    pub vips: usize,
    pub peers: usize,
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
    /// Which of the two map generations is live now.
    pub generation: u32,
    pub config_digest: String,
    /// Where the program goes on the hook.
    pub order: Order,
    /// Why the program is not where `order` wants it and can't be put there (netlink
    /// behind a TCX program or a filter at priority 1, a priority taken).
    pub order_problem: Option<String>,
    /// What recovery finished or undid first (a command killed earlier).
    pub recovered: Vec<String>,
}

impl AttachReport {
    /// The report of an attach or reload of `interface` that applied `config` (`applied`)
    /// and left `program_id` (pinned in `pin_dir`) hooked in `mode` at `order`.
    /// `recovered` is empty: the caller adds what recovery did.
    // All ten come from the caller (attach or reload); grouping them would only move the
    // struct literal.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        interface: IfName,
        action: Action,
        rehook_reason: Option<String>,
        mode: Mode,
        program_id: Option<u32>,
        pin_dir: PathBuf,
        applied: ApplyReport,
        config: &Config,
        order: Order,
        order_problem: Option<String>,
    ) -> Self {
        Self {
            interface,
            action,
            rehook_reason,
            mode,
            program_id,
            pin_dir,
            vips: applied.vips,
            peers: applied.peers,
            added: applied.added,
            removed: applied.removed,
            kept: applied.kept,
            generation: applied.generation,
            config_digest: config.digest_hex(),
            order,
            order_problem,
            recovered: Vec::new(),
        }
    }
}

/// Whether the program sits where its [`Order`] wants it after a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "placement", content = "why", rename_all = "lowercase")]
pub enum Placement {
    /// It was already there.
    InPlace,
    /// It was moved there (what was wrong).
    Moved(String),
    /// It is not there and can't be put there (why).
    Impossible(String),
}

/// What [`Attachment::repair`](super::Attachment::repair) did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub interface: IfName,
    /// Why the program had to be hooked again.
    pub rehooked: Option<String>,
    pub placement: Placement,
    pub order: Order,
    pub recovered: Vec<String>,
}

impl RepairReport {
    /// Whether anything was changed on the hook.
    pub fn changed(&self) -> bool {
        self.rehooked.is_some() || matches!(self.placement, Placement::Moved(_))
    }
}

/// What `detach` removed.
#[derive(Debug, Clone, Serialize)]
pub struct DetachReport {
    pub interface: IfName,
    pub mode: Option<Mode>,
    #[serde(serialize_with = "crate::text::serialize_path")]
    pub pin_dir: PathBuf,
    /// The namespace the attachment belonged to, when not the caller's.
    pub netns: Option<String>,
    pub recovered: Vec<String>,
}
