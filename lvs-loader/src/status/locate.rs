//! Where the namespace of an attachment's pins is (here, reachable elsewhere, or gone),
//! and running code inside it.

use std::collections::BTreeMap;

use crate::{
    error::{Error, Result},
    netns::{self, Found, NetnsId, Scan},
};

/// Where an attachment's namespace is.
#[derive(Clone, Debug)]
pub(crate) enum NsLoc {
    Here,
    There(Found),
    Gone,
}

impl NsLoc {
    /// Whether this is provably the namespace that made the pins of `id`: same cookie
    /// (the inode alone may be a later namespace's).
    pub(super) fn proves(&self, id: &NetnsId) -> bool {
        id.cookie.is_some()
            && match self {
                Self::Here => true,
                Self::There(f) => f.id == *id,
                Self::Gone => false,
            }
    }
}

pub(crate) fn here() -> Result<NetnsId> {
    netns::current().map_err(|e| Error::io("reading this network namespace", e))
}

pub(crate) fn locate(ids: &[NetnsId], here: NetnsId) -> BTreeMap<NetnsId, NsLoc> {
    let others: Vec<u64> = ids
        .iter()
        .filter(|i| **i != here)
        .map(|i| i.inode)
        .collect();
    let scan = if others.is_empty() {
        Scan::default()
    } else {
        Scan::new(Some(&others))
    };
    ids.iter()
        .map(|id| {
            let loc = if *id == here {
                NsLoc::Here
            } else {
                scan.get(id).cloned().map_or(NsLoc::Gone, NsLoc::There)
            };
            (*id, loc)
        })
        .collect()
}

/// Runs `f` in the namespace `loc` (the caller's own for `Here`).
pub(super) fn in_ns<R: Send>(loc: &NsLoc, f: impl FnOnce() -> R + Send) -> Option<R> {
    match loc {
        NsLoc::Here => Some(f()),
        NsLoc::There(found) => found
            .open()
            .ok()
            .and_then(|file| netns::run_in(&file, f).ok()),
        NsLoc::Gone => None,
    }
}
