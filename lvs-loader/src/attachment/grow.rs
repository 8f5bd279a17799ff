//! Growth: a reload whose config does not fit the attachment's maps (their capacity
//! follows the config, [`lvs_ebpf_common::capacity_for`]) gets a complete new program and
//! map set, swapped in on the hook in one step.
//!
//! Steps (lock held, recovery done, the old program on its hook):
//!
//! 1. build in `<ifname>:new`: maps of the new capacity and the program pinned, the
//!    config applied, the metadata (hook record copied) written;
//! 2. swap: TCX `BPF_LINK_UPDATE` of the pinned link (only if it still runs the old
//!    program), netlink a cls_bpf replace of the recorded filter (same priority and
//!    handle): every packet runs the old or the new program, both mark the VIPs the two
//!    configs share;
//! 3. once the old program has finished its last packet, its counts are written into the
//!    new maps' carried-over counts (which the new program never writes: exact);
//! 4. TCX: the link pin moves into `<ifname>:new`;
//! 5. `<ifname>` becomes `<ifname>:old`, `<ifname>:new` becomes `<ifname>`;
//! 6. the old pins go (nothing on the hook refers to them any more).
//!
//! Recovery ([`Attachment::recover_growth`]) tells the halves apart by the hook: if the
//! new program runs there (or `<ifname>` is already renamed away), it finishes 3-6;
//! otherwise it removes `<ifname>:new`, which nothing on the hook uses.

use std::{os::fd::AsFd as _, path::Path};

use super::{Attachment, describe, open_pins, read_meta};
use crate::{
    bpf,
    config::Config,
    datapath::Datapath,
    error::{Error, Result},
    failpoint,
    hook::{self, Mode, netlink},
    maps::{ApplyReport, MapSet},
    meta::{Generation, Meta},
    pins::{self, LINK_PIN, PROG_PIN},
    text,
};

/// The capacity `config` needs if `maps` are too small for it, or so large that it
/// takes a quarter or less of them ([`lvs_ebpf_common::resized_capacity`]): a reload then
/// swaps in maps of that size.
pub(super) fn needed(maps: &MapSet, config: &Config) -> Result<Option<u32>> {
    Ok(lvs_ebpf_common::resized_capacity(
        maps.capacity()?,
        config.vips.len(),
    ))
}

/// Waits until every packet that may still run the old program has finished: a
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is a `synchronize_rcu()`, and TC programs run
/// under RCU. (Without membarrier, a pause far longer than any packet's run.)
fn quiesce() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier(2) takes (int cmd, unsigned int flags[, int cpu_id]).
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0) };
    if rc != 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::io(
            format!(
                "renaming {} to {}",
                text::escape_path(from),
                text::escape_path(to)
            ),
            e,
        )
    })
}

impl Attachment {
    /// Reloads `config` into a new program and map set of `capacity` VIP slots and swaps
    /// them in (see the module docs). `old_maps`/`meta` are the published attachment's,
    /// `old_prog` its program (on its hook). Returns what was applied and the new
    /// program's id.
    pub(super) fn grow(
        &self,
        meta: &Meta,
        config: &Config,
        capacity: u32,
        old_prog: u32,
    ) -> Result<(ApplyReport, u32)> {
        let staging = self.staging();
        pins::mkdir_private(&staging)?;
        failpoint::hit("grow:staging-created");
        let built = self.grow_build(&staging, meta, config, capacity);
        let (applied, new_prog) = match built {
            Ok(x) => x,
            Err(e) => {
                let _ = pins::remove_attachment_dir(&staging);
                return Err(e);
            }
        };
        failpoint::hit("grow:built");
        if let Err(e) = self.grow_swap(&staging, meta, old_prog) {
            // Not swapped (each swap is one kernel operation): the new pins are unused.
            if !hook::is_hooked(meta.ifindex, new_prog).unwrap_or(true) {
                let _ = pins::remove_attachment_dir(&staging);
            }
            return Err(e);
        }
        failpoint::hit("grow:swapped");
        self.grow_publish()?;
        Ok((applied, new_prog))
    }

    fn grow_build(
        &self,
        staging: &Path,
        meta: &Meta,
        config: &Config,
        capacity: u32,
    ) -> Result<(ApplyReport, u32)> {
        let mut dp = Datapath::load_sized(capacity)?;
        dp.maps.pin(staging)?;
        let prog_path = staging.join(PROG_PIN);
        dp.program()?.pin(&prog_path).map_err(|e| Error::Pin {
            path: prog_path.clone(),
            source: Box::new(e),
        })?;
        failpoint::hit("grow:pinned");
        let program_id = dp.program_id()?;
        let mut new_meta = meta.clone();
        new_meta.generations = [Generation::default(), Generation::default()];
        let serial = meta.next_serial();
        let applied = dp.maps.apply_with(config, serial, |maps, r, _post| {
            new_meta.generations[r.generation as usize & 1] = describe(config, r, serial, false);
            maps.write_meta(&new_meta.to_raw()?)
        })?;
        failpoint::hit("grow:configured");
        Ok((applied, program_id))
    }

    /// Points the hook at the program pinned in `staging`.
    fn grow_swap(&self, staging: &Path, meta: &Meta, old_prog: u32) -> Result<()> {
        let new_path = staging.join(PROG_PIN);
        let new_fd = bpf::obj_get(&new_path)
            .map_err(|e| Error::io(format!("opening {}", text::escape_path(&new_path)), e))?;
        let swap_err = |source: std::io::Error| Error::Attach {
            iface: self.ifname.clone(),
            mode: meta.mode,
            hint: Some("could not move the hook to the resized maps; the old ones stay live"),
            source,
        };
        match meta.mode {
            Mode::Tcx => {
                let link_path = self.dir().join(LINK_PIN);
                let link = bpf::obj_get(&link_path).map_err(swap_err)?;
                let old_fd = bpf::prog_by_id(old_prog).map_err(swap_err)?;
                bpf::link_update(link.as_fd(), new_fd.as_fd(), old_fd.as_fd()).map_err(swap_err)
            }
            Mode::Netlink => {
                let nl = meta
                    .nl
                    .ok_or_else(|| swap_err(std::io::Error::from_raw_os_error(libc::ENOENT)))?;
                netlink::filter_replace(
                    meta.ifindex,
                    nl.priority,
                    nl.handle,
                    new_fd.as_fd(),
                    lvs_ebpf_common::PROGRAM_NAME,
                )
                .map_err(swap_err)
            }
        }
    }

    /// Steps 3-6 (the hook runs the program of `<ifname>:new`); each can be redone.
    fn grow_publish(&self) -> Result<()> {
        let (dir, staging, removing) = (self.dir(), self.staging(), self.removing());
        // The counters: once the old program has finished its last packet, its counts
        // become the new maps' carried-over counts (values set, so redoing it is fine).
        let old = if dir.exists() { &dir } else { &removing };
        if let (Ok(mut old_maps), Ok(mut new_maps)) = (
            open_pins(old, &self.ifname),
            open_pins(&staging, &self.ifname),
        ) {
            quiesce();
            new_maps.carry_counters_from(&mut old_maps)?;
            failpoint::hit("grow:counters-carried");
        }
        if dir.join(LINK_PIN).exists() && !staging.join(LINK_PIN).exists() {
            rename(&dir.join(LINK_PIN), &staging.join(LINK_PIN))?;
            failpoint::hit("grow:link-moved");
        }
        if dir.exists() {
            pins::rename_noreplace(&dir, &removing)?;
            failpoint::hit("grow:old-renamed");
        }
        pins::rename_noreplace(&staging, &dir)?;
        failpoint::hit("grow:published");
        pins::remove_attachment_dir(&removing)?;
        failpoint::hit("grow:old-removed");
        Ok(())
    }

    /// A growth left half-done (`<ifname>:new` beside `<ifname>` or `<ifname>:old`):
    /// finished if the new program is on the hook or the old directory already renamed,
    /// undone otherwise. `None` when there is none.
    pub(super) fn recover_growth(&self) -> Result<Option<String>> {
        let (dir, staging, removing) = (self.dir(), self.staging(), self.removing());
        if !staging.exists() || !(dir.exists() || removing.exists()) {
            return Ok(None);
        }
        let swapped = !dir.exists()
            || match (
                read_meta(&staging),
                bpf::pinned_prog_id(&staging.join(PROG_PIN)),
            ) {
                (Ok(m), Ok(id)) => hook::is_hooked(m.ifindex, id)?,
                // Not built far enough to have been swapped in.
                _ => false,
            };
        if swapped {
            self.grow_publish()?;
            failpoint::hit("recover:growth-finished");
            Ok(Some(format!(
                "finished an interrupted resize of {}'s maps",
                self.ifname
            )))
        } else {
            pins::remove_attachment_dir(&staging)?;
            failpoint::hit("recover:growth-undone");
            Ok(Some(format!(
                "undid an interrupted resize of {}'s maps (removed {})",
                self.ifname,
                text::escape_path(&staging)
            )))
        }
    }
}
