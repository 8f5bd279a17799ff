//! Looking after one interface, once, on a blocking thread: attach it when nothing is
//! attached (and it exists), adopt what is there, put the program back on its hook and
//! in its place ([`Attachment::repair`]), apply the running config when the live one is
//! another; then say how it is ([`health`]). Every change goes through [`Attachment`],
//! under its lock, so oneshot commands keep working beside the daemon.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    AttachOptions, AttachReport, Attachment, Error, ModeChoice, Placement, RepairReport, bpf,
    config::Config,
    health::{self, Expect, Health},
    hook::Order,
    ifname::IfName,
    status::State,
    sys,
};

/// What one look needs.
#[derive(Clone)]
pub struct Job {
    pub pin_dir: PathBuf,
    pub ifname: IfName,
    pub config: Arc<Config>,
    pub mode: ModeChoice,
    /// `--position`/`--priority` of the daemon; `None`: first for new attachments, the
    /// recorded order for adopted ones.
    pub order: Option<Order>,
    pub lock_wait: Duration,
}

/// A change one look made.
#[derive(Debug)]
pub enum Action {
    /// Nothing was attached: attached.
    Attached(AttachReport),
    /// Re-hooked and/or put back in its place.
    Repaired(RepairReport),
    /// The running config applied (the live one was another).
    Reloaded(AttachReport),
}

/// What to poll between looks: the TCX hook's programs (no rtnetlink notification
/// tells when a TCX link is detached or another program is put in front).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    pub ifindex: u32,
    pub tcx_ids: Vec<u32>,
}

impl Watched {
    /// What is there now, for interface `ifname`.
    pub fn now(ifname: &IfName) -> Option<Self> {
        let ifindex = sys::ifindex(ifname)?;
        let tcx_ids = if sys::supports_tcx() {
            bpf::tcx_ingress_prog_ids(ifindex).unwrap_or_default()
        } else {
            Vec::new()
        };
        Some(Self { ifindex, tcx_ids })
    }

    /// What is there now, when rtnetlink would have told of a new index for `ifname`
    /// (deleted, re-created, renamed, moved: link notifications): the TCX query alone, on
    /// the same index, without the name lookup (`if_nametoindex` creates a socket, asks,
    /// closes it: 3 of the 7 system calls of an idle tick, a quarter of its CPU). A failed
    /// query (the index is gone) falls back to [`Self::now`].
    pub fn requery(&self, ifname: &IfName) -> Option<Self> {
        if !sys::supports_tcx() {
            return Some(self.clone());
        }
        match bpf::tcx_ingress_prog_ids(self.ifindex) {
            Ok(tcx_ids) => Some(Self {
                ifindex: self.ifindex,
                tcx_ids,
            }),
            Err(_) => Self::now(ifname),
        }
    }
}

/// The result of one look.
#[derive(Debug)]
pub struct Outcome {
    pub ifname: IfName,
    pub actions: Vec<Action>,
    /// What failed, if anything (the health says what is wrong).
    pub error: Option<Error>,
    pub health: Option<Health>,
    /// Whether the interface exists (in the daemon's namespace).
    pub present: bool,
    /// Whether something is attached (for "adopted" at start).
    pub attached: bool,
    pub watched: Option<Watched>,
    pub took: Duration,
}

impl Job {
    fn attachment(&self) -> crate::Result<Attachment> {
        Ok(Attachment::here(&self.pin_dir, &self.ifname)?.with_lock_wait(self.lock_wait))
    }

    fn attach(&self) -> crate::Result<Action> {
        let opts = AttachOptions {
            mode: self.mode,
            allow_stacking: false,
            order: self.order,
        };
        Attachment::create_with_wait(
            &self.pin_dir,
            &self.ifname,
            &self.config,
            opts,
            self.lock_wait,
        )
        .map(Action::Attached)
    }

    fn tend(&self, actions: &mut Vec<Action>) -> crate::Result<()> {
        let att = self.attachment()?;
        let present = sys::ifindex(&self.ifname).is_some();
        if !att.exists()? {
            if present {
                actions.push(self.attach()?);
            }
            return Ok(());
        }
        if !present {
            // Deleted, renamed or moved away: nothing to hook until it is back.
            return Ok(());
        }
        let st = att.status()?;
        let wrong_order = self.order.is_some_and(|o| st.order != Some(o));
        if st.state != State::Ok
            || !st.is_hooked_here()
            || st.order_problem.is_some()
            || wrong_order
        {
            match att.repair(self.order) {
                Ok(r) => {
                    if r.changed() || !r.recovered.is_empty() {
                        actions.push(Action::Repaired(r));
                    }
                }
                // Recovery undid a half-made attach: nothing is attached now.
                Err(Error::NotAttached { .. }) => {
                    actions.push(self.attach()?);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if st.digest != Some(self.config.digest) {
            actions.push(Action::Reloaded(att.reload(&self.config)?));
        }
        Ok(())
    }

    /// One look (blocking).
    pub fn run(&self) -> Outcome {
        let start = Instant::now();
        let mut actions = Vec::new();
        let error = self.tend(&mut actions).err();
        let health = health::of_interface(
            &self.pin_dir,
            &self.ifname,
            &Expect::Digest(self.config.digest),
        )
        .ok();
        let attached = self.attachment().and_then(|a| a.exists()).unwrap_or(false);
        Outcome {
            ifname: self.ifname.clone(),
            actions,
            error,
            health,
            present: sys::ifindex(&self.ifname).is_some(),
            attached,
            watched: Watched::now(&self.ifname),
            took: start.elapsed(),
        }
    }
}

/// Why a repair was needed, for the counter's `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Someone detached it (the pins were gone): attached again.
    Detached,
    /// A new interface of that name (deleted and re-created, renamed, moved in).
    Recreated,
    /// The filter, qdisc or TCX link was removed.
    Unhooked,
    /// Something was put in front of it.
    Order,
    /// It marked with another config than the daemon's.
    Config,
    /// A command killed half-way was finished or undone.
    Interrupted,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Self::Detached,
        Self::Recreated,
        Self::Unhooked,
        Self::Order,
        Self::Config,
        Self::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detached => "detached",
            Self::Recreated => "recreated",
            Self::Unhooked => "unhooked",
            Self::Order => "order",
            Self::Config => "config",
            Self::Interrupted => "interrupted",
        }
    }

    /// The reasons of a repair report.
    pub fn of_repair(r: &RepairReport) -> Vec<Reason> {
        let mut out = Vec::new();
        if !r.recovered.is_empty() {
            out.push(Self::Interrupted);
        }
        if let Some(why) = &r.rehooked {
            out.push(if why.contains("recreated") {
                Self::Recreated
            } else {
                Self::Unhooked
            });
        }
        if matches!(r.placement, Placement::Moved(_)) {
            out.push(Self::Order);
        }
        out
    }
}

/// Errors that only mean "not now": the interface is not there, or another command is
/// changing it.
pub fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::NoInterface { .. } | Error::InterfaceGone { .. } | Error::Busy { .. }
    )
}
