//! The post-flip journal: what is left to do after a generation flip (counter slots taken
//! over from removed VIPs: zero them, write their new VIP's name), saved before the flip
//! so that recovery can finish it if the loader dies right after flipping.
//!
//! One small file per attachment next to its lock, written to a temporary name and
//! renamed into place, tagged with the generation serial it belongs to.

use std::{fs, io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use lvs_ebpf_common::VipInfo;

use crate::{
    error::{Error, Result},
    maps::PostFlip,
    text,
};

const MAGIC: &[u8; 8] = b"LVSPFJ01";
const INFO_LEN: usize = std::mem::size_of::<VipInfo>();

fn info_bytes(i: &VipInfo) -> Vec<u8> {
    let mut v = Vec::with_capacity(INFO_LEN);
    v.extend_from_slice(&i.order.to_le_bytes());
    v.extend_from_slice(&i.name_len.to_le_bytes());
    v.extend_from_slice(&i.name);
    v
}

fn info_from(b: &[u8]) -> VipInfo {
    let mut i = VipInfo {
        order: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        name_len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ..VipInfo::default()
    };
    i.name.copy_from_slice(&b[8..INFO_LEN]);
    i
}

/// Saves `work` for generation `serial`.
pub fn write(path: &Path, serial: u64, work: &PostFlip) -> Result<()> {
    let mut buf = Vec::with_capacity(20 + work.len() * (4 + INFO_LEN));
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&serial.to_le_bytes());
    buf.extend_from_slice(&(work.len() as u32).to_le_bytes());
    for (slot, info) in work {
        buf.extend_from_slice(&slot.to_le_bytes());
        buf.extend_from_slice(&info_bytes(info));
    }
    let tmp = path.with_extension("postflip.tmp");
    let err = |e| Error::io(format!("writing {}", text::escape_path(path)), e);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(&buf).map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)
}

/// The work saved for generation `serial`, if that is what the file holds.
pub fn read(path: &Path, serial: u64) -> Option<PostFlip> {
    let b = fs::read(path).ok()?;
    if b.len() < 20 || &b[..8] != MAGIC {
        return None;
    }
    if u64::from_le_bytes(b[8..16].try_into().ok()?) != serial {
        return None;
    }
    let n = u32::from_le_bytes(b[16..20].try_into().ok()?) as usize;
    let rec = 4 + INFO_LEN;
    if b.len() != 20 + n * rec {
        return None;
    }
    Some(
        b[20..]
            .chunks_exact(rec)
            .map(|c| {
                (
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    info_from(&c[4..]),
                )
            })
            .collect(),
    )
}

pub fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_serial_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.postflip");
        let mut info = VipInfo {
            order: 7,
            name_len: 3,
            ..VipInfo::default()
        };
        info.name[..3].copy_from_slice(b"web");
        let work = vec![(5u32, info), (9u32, VipInfo::default())];
        write(&p, 12, &work).unwrap();
        assert_eq!(read(&p, 12), Some(work));
        assert_eq!(read(&p, 13), None, "another generation's journal");
        fs::write(&p, b"LVSPFJ01garbage").unwrap();
        assert_eq!(read(&p, 12), None);
        remove(&p);
        assert_eq!(read(&p, 12), None);
    }
}
