//! Loading the real program for BPF_PROG_TEST_RUN tests.

use lvs_loader::{
    config::{self, Config},
    datapath::Datapath,
    maps::ApplyReport,
    stats::Stats,
    testrun::{self, TestRunOutput},
};

/// The program loaded into the kernel (not attached) with `toml` installed in its maps.
pub struct Loaded {
    pub dp: Datapath,
    pub config: Config,
    fd: std::os::fd::RawFd,
    /// The explaining twin's fd (`lvs_explain`, same maps).
    pub explain_fd: std::os::fd::RawFd,
}

impl Loaded {
    pub fn new(toml: &str) -> Self {
        let config = config::parse(toml, "test.toml")
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        Self::with_config(config)
    }

    pub fn with_config(config: Config) -> Self {
        let mut dp = Datapath::load().unwrap_or_else(|e| panic!("loading the eBPF program: {e:?}"));
        dp.apply(&config)
            .unwrap_or_else(|e| panic!("applying config: {e:?}"));
        let fd = dp.program_fd().expect("program fd");
        let explain_fd = dp.explain_fd().expect("explain program fd");
        Self {
            dp,
            config,
            fd,
            explain_fd,
        }
    }

    /// Runs one frame through the program once.
    pub fn run(&self, frame: &[u8], mark_in: u32) -> TestRunOutput {
        testrun::run_skb(self.fd, frame, mark_in, 1)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()))
    }

    /// Like `run`, but returns the kernel's refusal instead of panicking.
    pub fn try_run(&self, frame: &[u8], mark_in: u32) -> lvs_loader::Result<TestRunOutput> {
        testrun::run_skb(self.fd, frame, mark_in, 1)
    }

    /// Installs another config (atomic generation switch).
    pub fn apply(&mut self, toml: &str) {
        let config = config::parse(toml, "test.toml")
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        self.apply_config(config);
    }

    /// Installs `config` (atomic generation switch); returns what changed.
    pub fn apply_config(&mut self, config: Config) -> ApplyReport {
        let r = self
            .dp
            .apply(&config)
            .unwrap_or_else(|e| panic!("applying config: {e:?}"));
        self.config = config;
        r
    }

    /// The counters, as `lvs-loader stats` would show them.
    pub fn stats(&mut self) -> Stats {
        self.dp.stats("test").expect("stats")
    }
}

/// Hex dump for failure messages.
pub fn hex(frame: &[u8]) -> String {
    frame
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("")
}
