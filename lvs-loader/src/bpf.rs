//! The few `bpf(2)` commands lvs-loader needs by interface index rather than by name
//! (aya 0.14 takes interface names as `&str`, which can't name a non-UTF-8 interface),
//! or that aya does not expose: TCX link create/detach/query, link and program info by
//! fd or id, pinning and opening pins of any object.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_LINK_UPDATE: libc::c_long = 29;
/// `BPF_F_REPLACE`: a link update that fails unless `old_prog_fd` is the link's program.
const BPF_F_REPLACE: u32 = 1 << 2;
/// `enum bpf_attach_type`: BPF_TCX_INGRESS.
pub const BPF_TCX_INGRESS: u32 = 46;
/// `enum bpf_link_type`: BPF_LINK_TYPE_TCX.
pub const BPF_LINK_TYPE_TCX: u32 = 11;
/// `BPF_F_BEFORE`: with no relative object, attach first.
pub const BPF_F_BEFORE: u32 = 1 << 3;

/// `bpf(cmd, attr, sizeof attr)`: the syscall's result (an fd for the commands that
/// create one), or the OS error.
///
/// # Safety
///
/// `attr` must be a properly laid out prefix of `union bpf_attr` for `cmd`, and every
/// pointer in it must point at memory of the size the command reads or writes (the
/// kernel zero-checks the bytes past `size_of::<T>()` that it knows).
pub unsafe fn bpf_cmd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller's contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// [`bpf_cmd`] for the attrs of this module, each laid out for its command, with
/// pointers to buffers of the sizes they state.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: see above.
    unsafe { bpf_cmd(cmd, attr) }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// Pins `fd` (map, program or link) at `path` (on bpffs; fails with EEXIST if taken).
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..ObjAttr::default()
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// Opens the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: p.as_ptr() as u64,
        ..ObjAttr::default()
    };
    sys_bpf(BPF_OBJ_GET, &mut attr).map(fd_from)
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

/// Creates a TCX ingress link of `prog` on `ifindex` (`flags`: 0 = last, [`BPF_F_BEFORE`]
/// = first). The link lives as long as an fd or a pin refers to it.
pub fn tcx_link_create(prog: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_TCX_INGRESS,
        flags,
        ..LinkCreateAttr::default()
    };
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(fd_from)
}

#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Replaces the program of `link` with `new_prog` in one step (atomic for every
/// packet), only if it still runs `old_prog` (EPERM otherwise).
pub fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    old_prog: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new_prog.as_raw_fd() as u32,
        flags: BPF_F_REPLACE,
        old_prog_fd: old_prog.as_raw_fd() as u32,
    };
    sys_bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Detaches a link from its hook now, whoever else still holds it.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: link.as_raw_fd() as u32,
    };
    sys_bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// Ids of the programs on `ifindex`'s TCX ingress hook, in run order. Empty on kernels
/// without TCX.
pub fn tcx_ingress_prog_ids(ifindex: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_ifindex: ifindex,
            attach_type: BPF_TCX_INGRESS,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..QueryAttr::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; attr.prog_cnt as usize + 16];
            }
            // No TCX on this kernel.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn obj_info<T: Default>(fd: BorrowedFd<'_>) -> io::Result<T> {
    let mut info = T::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: &mut info as *mut T as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

#[repr(C)]
#[derive(Default)]
struct RawLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    // union; for TCX: ifindex, attach_type
    a: u32,
    b: u32,
    _rest: [u64; 4],
}

/// What a link is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    /// TCX links: the device (0 once the device is gone or the link was detached).
    pub tcx_ifindex: Option<u32>,
}

pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let raw: RawLinkInfo = obj_info(fd)?;
    Ok(LinkInfo {
        link_type: raw.link_type,
        id: raw.id,
        prog_id: raw.prog_id,
        tcx_ifindex: (raw.link_type == BPF_LINK_TYPE_TCX).then_some(raw.a),
    })
}

#[repr(C)]
struct RawProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

impl Default for RawProgInfo {
    fn default() -> Self {
        // SAFETY: plain integers and byte arrays.
        unsafe { std::mem::zeroed() }
    }
}

/// A loaded program: id and name (as the kernel keeps it, at most 15 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub name: Vec<u8>,
}

pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let raw: RawProgInfo = obj_info(fd)?;
    let end = raw.name.iter().position(|&c| c == 0).unwrap_or(16);
    Ok(ProgInfo {
        id: raw.id,
        name: raw.name[..end].to_vec(),
    })
}

/// Ids of the maps program `fd` uses (all of them, pinned or not: what its kernel memory
/// is made of).
pub fn prog_map_ids(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let raw: RawProgInfo = obj_info(fd)?;
    let mut ids = vec![0u32; raw.nr_map_ids as usize];
    let mut info = RawProgInfo {
        nr_map_ids: ids.len() as u32,
        map_ids: ids.as_mut_ptr() as u64,
        ..RawProgInfo::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<RawProgInfo>() as u32,
        info: &mut info as *mut RawProgInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    ids.truncate(info.nr_map_ids as usize);
    Ok(ids)
}

/// The map with kernel id `id`.
pub fn map_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    sys_bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).map(fd_from)
}

/// One map's kernel memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapMemory {
    pub name: String,
    /// `enum bpf_map_type`.
    pub map_type: u32,
    pub max_entries: u32,
    /// `memlock` of its fdinfo: the kernel's own accounting of the map's memory on 6.4
    /// and later, an estimate from its shape before.
    pub bytes: u64,
}

impl MapMemory {
    /// A per-CPU map (its memory grows with the number of possible CPUs).
    pub fn per_cpu(&self) -> bool {
        // BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH.
        matches!(self.map_type, 5 | 6 | 10)
    }
}

/// Name, shape and kernel memory of map `fd`.
pub fn map_memory(fd: BorrowedFd<'_>) -> io::Result<MapMemory> {
    #[repr(C)]
    #[derive(Default)]
    struct RawMapInfo {
        map_type: u32,
        id: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        name: [u8; 16],
    }
    let raw: RawMapInfo = obj_info(fd)?;
    let end = raw.name.iter().position(|&c| c == 0).unwrap_or(16);
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let memlock = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(MapMemory {
        name: String::from_utf8_lossy(&raw.name[..end]).into_owned(),
        map_type: raw.map_type,
        max_entries: raw.max_entries,
        bytes: memlock,
    })
}

/// Kernel memory of every map program `fd` uses.
pub fn prog_map_memory(fd: BorrowedFd<'_>) -> io::Result<Vec<MapMemory>> {
    prog_map_ids(fd)?
        .into_iter()
        .map(|id| map_memory(map_by_id(id)?.as_fd()))
        .collect()
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The program with kernel id `id` (ENOENT once it is gone).
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(fd_from)
}

/// Whether a program with this id still exists.
pub fn prog_exists(id: u32) -> bool {
    prog_by_id(id).is_ok()
}

/// Id of the object pinned at `path`, when it is a program.
pub fn pinned_prog_id(path: &Path) -> io::Result<u32> {
    let fd = obj_get(path)?;
    prog_info(fd.as_fd()).map(|i| i.id)
}
