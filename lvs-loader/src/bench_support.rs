//! Support for `lvs-bench`: the empty TC program that gives the benchmark its floor, and
//! attaching a loaded datapath variant (the `htab` contender) without pins.
//!
//! `lvs-empty` (lvs-ebpf/src/empty.rs) is built by build.rs together with the datapath
//! and only returns `TC_ACT_UNSPEC`; it is never attached by the loader (the benchmark
//! attaches it to measure what the TC hook alone costs).

use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::{
    Ebpf, EbpfLoader,
    programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions},
};

use crate::{
    datapath::Datapath,
    error::{Error, Result},
};

/// Attaches a loaded datapath (any variant) to `iface`'s TC ingress with TCX in the
/// caller's network namespace, unpinned: the link lives until `dp` is dropped. The
/// benchmark uses it for the kernel-hash-map contender, which `attach` never installs.
pub fn attach_tcx(dp: &mut Datapath, iface: &str) -> Result<()> {
    dp.program()?
        .attach_with_options(
            iface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(|e| Error::Kernel(format!("attaching {iface} (tcx): {e}")))?;
    Ok(())
}

/// The empty program's object (built by build.rs, like [`crate::datapath::EBPF_OBJECT`]).
pub static EMPTY_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs-empty"));

/// Name of the classifier in [`EMPTY_OBJECT`].
pub const EMPTY_PROGRAM_NAME: &str = "lvs_empty";

fn load_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Load {
        hint: None,
        source: Box::new(e),
    }
}

/// The loaded (never attached) empty program.
pub struct EmptyProgram {
    ebpf: Ebpf,
}

impl EmptyProgram {
    pub fn load() -> Result<Self> {
        let mut ebpf = EbpfLoader::new().load(EMPTY_OBJECT).map_err(load_error)?;
        Self::classifier(&mut ebpf)?.load().map_err(load_error)?;
        Ok(Self { ebpf })
    }

    fn classifier(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
        let prog = ebpf
            .program_mut(EMPTY_PROGRAM_NAME)
            .ok_or_else(|| Error::Load {
                hint: None,
                source: format!("program {EMPTY_PROGRAM_NAME} missing from the object").into(),
            })?;
        prog.try_into().map_err(load_error)
    }

    /// Attaches to `iface`'s TC ingress with TCX in the caller's network namespace; the
    /// link lives (unpinned) until `self` is dropped.
    pub fn attach_tcx(&mut self, iface: &str) -> Result<()> {
        let prog = Self::classifier(&mut self.ebpf)?;
        prog.attach_with_options(
            iface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(|e| Error::Kernel(format!("attaching the empty program to {iface}: {e}")))?;
        Ok(())
    }

    /// The program's fd, for BPF_PROG_TEST_RUN.
    pub fn program_fd(&mut self) -> Result<RawFd> {
        let prog = Self::classifier(&mut self.ebpf)?;
        let fd = prog.fd().map_err(load_error)?;
        Ok(fd.as_fd().as_raw_fd())
    }
}
