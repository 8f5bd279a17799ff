//! Changing a published attachment: `reload` (new config into the standby generation,
//! then the flip; growth when it does not fit) and `repair` (back on the hook and in its
//! place), and the description a generation gets.

use std::path::{Path, PathBuf};

use super::{
    Action, AttachReport, Attachment, Placement, RepairReport, check_order, grow, open_pins,
    read_meta_from,
};
use crate::{
    bpf,
    config::Config,
    error::{Error, Result, ShownPath},
    failpoint,
    hook::Order,
    journal,
    maps::{ApplyReport, MapSet},
    meta::{Generation, Meta, check_path_len},
    pins::PROG_PIN,
    sys,
};

impl Attachment {
    /// Replaces VIPs and peers atomically. If the program is no longer on its hook (filter,
    /// qdisc or link removed, interface recreated) it is hooked again first, and the
    /// report says so; if the interface is gone this fails.
    pub fn reload(&self, config: &Config) -> Result<AttachReport> {
        sys::check_privileges()?;
        if let Some(p) = &config.path {
            check_path_len(&absolute_config_path(p))?;
        }
        let _guard = self.lock()?;
        failpoint::hit("reload:locked");
        let recovered = self.recover()?;
        if !self.dir().exists() {
            return Err(self.not_attached());
        }
        let mut r = self.reload_locked(config, None)?;
        r.recovered = recovered;
        Ok(r)
    }

    /// Puts the program back on its hook (like a reload does) and in its place there
    /// ([`Order`]; `order` replaces the recorded one), without touching the maps. Fails
    /// like a reload when the interface is gone.
    pub fn repair(&self, order: Option<Order>) -> Result<RepairReport> {
        sys::check_privileges()?;
        let _guard = self.lock()?;
        failpoint::hit("repair:locked");
        let recovered = self.recover()?;
        let dir = self.dir();
        if !dir.exists() {
            return Err(self.not_attached());
        }
        let mut maps = open_pins(&dir, &self.ifname)?;
        let mut meta = read_meta_from(&maps, &dir, &self.ifname)?;
        let program_id = self.pinned_program(&dir)?;
        self.set_order(&mut maps, &mut meta, order)?;
        let rehooked = self.ensure_hooked(&dir, &mut maps, &mut meta, program_id)?;
        let placement = self.ensure_order(&dir, &mut maps, &mut meta, program_id)?;
        Ok(RepairReport {
            interface: self.ifname.clone(),
            rehooked,
            placement,
            order: meta.order,
            recovered,
        })
    }

    /// Records a new order (before the hook is changed to match it).
    fn set_order(&self, maps: &mut MapSet, meta: &mut Meta, order: Option<Order>) -> Result<()> {
        if let Some(o) = order
            && o != meta.order
        {
            check_order(&self.ifname, meta.mode, o)?;
            meta.order = o;
            maps.write_meta(&meta.to_raw()?)?;
        }
        Ok(())
    }

    fn pinned_program(&self, dir: &Path) -> Result<u32> {
        bpf::pinned_prog_id(&dir.join(PROG_PIN)).map_err(|e| Error::BrokenPins {
            iface: self.ifname.clone(),
            dir: ShownPath(dir.to_path_buf()),
            what: format!("program pin: {e}"),
        })
    }
    /// Reload of the published attachment (lock held, recovery done); `order` replaces
    /// the recorded hook order.
    pub(super) fn reload_locked(
        &self,
        config: &Config,
        order: Option<Order>,
    ) -> Result<AttachReport> {
        let dir = self.dir();
        let mut maps = open_pins(&dir, &self.ifname)?;
        let mut meta = read_meta_from(&maps, &dir, &self.ifname)?;
        let program_id = self.pinned_program(&dir)?;
        self.set_order(&mut maps, &mut meta, order)?;
        let mut rehook_reason = self.ensure_hooked(&dir, &mut maps, &mut meta, program_id)?;
        let mut order_problem = None;
        match self.ensure_order(&dir, &mut maps, &mut meta, program_id)? {
            Placement::InPlace => {}
            Placement::Moved(why) => {
                rehook_reason.get_or_insert(format!("put back {}: it was {why}", meta.order));
            }
            Placement::Impossible(why) => order_problem = Some(why),
        }
        let (mode, order) = (meta.mode, meta.order);
        let report = |applied: ApplyReport, program_id: u32| {
            let action = if rehook_reason.is_some() {
                Action::Rehooked
            } else {
                Action::Reloaded
            };
            AttachReport::new(
                self.ifname.clone(),
                action,
                rehook_reason,
                mode,
                Some(program_id),
                dir,
                applied,
                config,
                order,
                order_problem,
            )
        };
        if let Some(capacity) = grow::needed(&maps, config)? {
            let (applied, new_prog) = self.grow(&meta, config, capacity, program_id)?;
            return Ok(report(applied, new_prog));
        }
        let serial = meta.next_serial();
        let journal_path = self.lock_key().journal_path();
        let mut pending = false;
        let applied = maps.apply_with(config, serial, |maps, r, post| {
            pending = !post.is_empty();
            if pending {
                journal::write(&journal_path, serial, post)?;
            }
            meta.generations[r.generation as usize & 1] = describe(config, r, serial, pending);
            maps.write_meta(&meta.to_raw()?)
        })?;
        failpoint::hit("reload:applied");
        if pending {
            meta.generations[applied.generation as usize & 1].pending = false;
            maps.write_meta(&meta.to_raw()?)?;
            journal::remove(&journal_path);
        }
        Ok(report(applied, program_id))
    }
}

/// The description of a generation that now holds `config`.
pub(super) fn describe(config: &Config, r: &ApplyReport, serial: u64, pending: bool) -> Generation {
    Generation {
        serial,
        applied_at: sys::now_unix(),
        vips: r.vips as u32,
        peers: r.peers as u32,
        pending,
        digest: config.digest,
        config_path: config.path.as_deref().map(absolute_config_path),
    }
}

/// The config path as `status` should show it later: absolute (a relative path means
/// nothing to a later command run elsewhere).
pub(super) fn absolute_config_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    })
}
