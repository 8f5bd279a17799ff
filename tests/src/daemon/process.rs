//! The daemon as a child process: its stderr collected line by line, waiting for a line
//! or the exit, signals.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The daemon, with its stderr collected line by line.
pub struct DaemonProc {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl DaemonProc {
    pub(super) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lvs-loader daemon");
        let err = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LVS_TEST_DAEMON_LOG").is_some() {
                    eprintln!("daemon: {line}");
                }
                l.lock().unwrap().push(line);
            }
        });
        Self {
            child: Some(child),
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Number of lines logged so far (to wait for a line logged after a point).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Whether a line containing `needle` was logged after line `from`.
    pub fn logged_after(&self, from: usize, needle: &str) -> bool {
        let l = self.lines.lock().unwrap();
        l[from.min(l.len())..].iter().any(|l| l.contains(needle))
    }

    /// Waits for a line containing `needle` logged after line `from`; returns it.
    pub fn wait_line_after(&mut self, from: usize, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap()[from..]
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "the daemon exited ({status}) while waiting for {needle:?}:\n{}",
                    self.log()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "no daemon line with {needle:?} within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_line_after(0, needle, timeout)
    }

    /// Waits for "ready:".
    pub fn wait_ready(&mut self) {
        self.wait_line("ready:", Duration::from_secs(30));
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Sends SIGTERM and waits for the exit (at most 30 s).
    pub fn term(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return s;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
