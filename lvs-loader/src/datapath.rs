//! Loading the embedded eBPF object.

use std::{
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    path::Path,
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, SchedClassifier},
};
use lvs_ebpf_common::{
    EXPLAIN_PROGRAM_NAME, MAX_VIPS, MIN_CAPACITY, PROGRAM_NAME, map_names, sized_entries,
};

use crate::{
    error::{Error, Result},
    maps::{ALL_MAPS, MapSet},
    sys,
};

/// The eBPF object built by build.rs (aya-build).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs-ebpf"));

/// The benchmark contender: the same program over kernel hash maps (never attached by
/// the loader; `lvs-bench` compares it with [`EBPF_OBJECT`]).
pub static HTAB_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs-htab"));

/// Which build of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The datapath: call-free VIP tables (what `attach` uses).
    Table,
    /// Kernel hash maps for VIPs and peers (benchmark contender).
    Htab,
}

impl Variant {
    pub fn object(self) -> &'static [u8] {
        match self {
            Self::Table => EBPF_OBJECT,
            Self::Htab => HTAB_OBJECT,
        }
    }
}

/// A loaded (not necessarily attached) program with its maps.
pub struct Datapath {
    ebpf: Ebpf,
    pub maps: MapSet,
}

/// What to do about a load failure, from the OS error inside it (by errno).
fn load_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut errno = None;
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some()
        {
            errno = io.raw_os_error();
        }
        cur = x.source();
    }
    match errno? {
        libc::EPERM | libc::EACCES => Some(
            "permission denied (needs CAP_BPF/CAP_SYS_ADMIN; is the memlock rlimit too low on an old kernel?)",
        ),
        libc::EINVAL if !sys::has_kernel_btf() => Some(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux missing) and rejected the program; lvs-ebpf needs Linux >= 5.4 with CONFIG_BPF_SYSCALL and CONFIG_NET_CLS_BPF",
        ),
        libc::ENOSYS => Some("the kernel has no bpf() syscall (CONFIG_BPF_SYSCALL=n)"),
        _ => None,
    }
}

/// The error for a failed load: RLIMIT_MEMLOCK named when it is what stopped it (EPERM
/// while a limit that could not be raised is in force), else the kernel's error with a hint.
fn load_error(e: impl std::error::Error + Send + Sync + 'static, memlock: sys::Memlock) -> Error {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(x) = src {
        if x.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            == Some(libc::EPERM)
            && let Some(err) = memlock.load_error()
        {
            return err;
        }
        src = x.source();
    }
    Error::Load {
        hint: load_hint(&e),
        source: Box::new(e),
    }
}

impl Datapath {
    /// Loads the program and creates its maps (nothing is attached or pinned). On kernels
    /// that charge BPF memory to RLIMIT_MEMLOCK (< 5.11) the limit is raised first.
    pub fn load() -> Result<Self> {
        Self::load_variant(Variant::Table)
    }

    /// Loads the program with maps for `capacity` VIP slots (see
    /// [`lvs_ebpf_common::capacity_for`]; clamped to [`MIN_CAPACITY`]..=[`MAX_VIPS`] and
    /// rounded up to a power of two) instead of the compiled [`MAX_VIPS`]: what `attach`
    /// and a growing reload use, so that kernel memory follows the config.
    pub fn load_sized(capacity: u32) -> Result<Self> {
        let c = capacity
            .clamp(MIN_CAPACITY, MAX_VIPS)
            .next_power_of_two()
            .min(MAX_VIPS);
        Self::load_with(Variant::Table, Some(c))
    }

    /// Loads a [`Variant`] of the program and creates its maps (full capacity).
    pub fn load_variant(variant: Variant) -> Result<Self> {
        Self::load_with(variant, None)
    }

    fn load_with(variant: Variant, capacity: Option<u32>) -> Result<Self> {
        let memlock = sys::raise_memlock();
        let mut loader = EbpfLoader::new();
        if let Some(c) = capacity {
            let (v4, v6, slots, info) = sized_entries(c);
            loader
                .map_max_entries(map_names::V4_TABLE, v4)
                .map_max_entries(map_names::V6_TABLE, v6)
                .map_max_entries(map_names::VIP_STATS, slots)
                .map_max_entries(map_names::VIP_BASE, slots)
                .map_max_entries(map_names::VIP_INFO, info);
        }
        let mut ebpf = loader
            .load(variant.object())
            .map_err(|e| load_error(e, memlock))?;
        {
            let prog = Self::classifier(&mut ebpf)?;
            prog.load().map_err(|e| load_error(e, memlock))?;
        }
        let maps = MapSet::take(&mut ebpf)?;
        Ok(Self { ebpf, maps })
    }

    /// Installs `config` in the maps (atomic generation switch), as a reload would.
    pub fn apply(&mut self, config: &crate::config::Config) -> Result<crate::maps::ApplyReport> {
        self.maps.apply(config)
    }

    /// Counters of the loaded (unattached) program, as `stats` shows them.
    pub fn stats(&mut self, interface: &str) -> Result<crate::stats::Stats> {
        crate::stats::from_maps(&mut self.maps, interface)
    }

    fn classifier(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
        Self::named(ebpf, PROGRAM_NAME)
    }

    fn named<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
        let prog = ebpf.program_mut(name).ok_or_else(|| Error::Load {
            hint: None,
            source: format!("program {name} missing from the eBPF object").into(),
        })?;
        prog.try_into().map_err(|e: ProgramError| Error::Load {
            hint: None,
            source: Box::new(e),
        })
    }

    pub fn program(&mut self) -> Result<&mut SchedClassifier> {
        Self::classifier(&mut self.ebpf)
    }

    /// The program's fd, for BPF_PROG_TEST_RUN.
    pub fn program_fd(&mut self) -> Result<RawFd> {
        let prog = self.program()?;
        let fd = prog.fd().map_err(|e| Error::Load {
            hint: None,
            source: Box::new(e),
        })?;
        Ok(fd.as_fd().as_raw_fd())
    }

    /// Loads the object against the maps pinned in `dir` (an attachment's pin
    /// directory) without loading or attaching any program and without creating or
    /// changing any map: [`Self::explain_fd`] then explains frames with the live
    /// configuration, touching no counter.
    pub fn load_pinned(dir: &Path) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        for name in ALL_MAPS {
            let pin = dir.join(name);
            if pin.exists() {
                loader.map_pin_path(name, pin);
            }
        }
        let ebpf = loader.load(EBPF_OBJECT).map_err(|e| Error::Load {
            hint: load_hint(&e),
            source: Box::new(e),
        })?;
        let maps = MapSet::from_pins(dir)?;
        Ok(Self { ebpf, maps })
    }

    /// The fd of the explaining twin (`lvs_explain`, loaded on first use; it shares this
    /// datapath's maps), for [`crate::testrun::explain`].
    pub fn explain_fd(&mut self) -> Result<RawFd> {
        let prog = Self::named(&mut self.ebpf, EXPLAIN_PROGRAM_NAME)?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| Error::Load {
                hint: load_hint(&e),
                source: Box::new(e),
            })?;
        }
        let fd = prog.fd().map_err(|e| Error::Load {
            hint: None,
            source: Box::new(e),
        })?;
        Ok(fd.as_fd().as_raw_fd())
    }

    /// Kernel id of the program.
    pub fn program_id(&mut self) -> Result<u32> {
        let prog = self.program()?;
        prog.info().map(|i| i.id()).map_err(|e| Error::Load {
            hint: None,
            source: Box::new(e),
        })
    }
}
