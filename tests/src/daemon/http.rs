//! HTTP requests to the daemon's server inside the director's namespace: what was sent,
//! what came back and how reading it ended, and parsing the response.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use super::DaemonLab;

impl DaemonLab {
    /// GET (or another method) `path` from the daemon's HTTP server at `port` on the
    /// director's loopback: (status, body). Panics, naming the request and how long it
    /// waited, when no HTTP response came.
    pub fn http(&self, port: u16, method: &str, path: &str) -> (u16, String) {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let r = self.http_exchange(port, request.as_bytes());
        match try_parse_response(&r.raw) {
            Some(x) => x,
            None => panic!("{method} {path} on port {port}: {}", r.describe()),
        }
    }

    /// Sends `request` as is; the raw response (empty when the server closed without
    /// answering or did not answer within [`HTTP_TIMEOUT`]).
    pub fn http_raw(&self, port: u16, request: &[u8]) -> String {
        self.http_exchange(port, request).raw
    }

    /// Sends `request` as is; the raw response, how long it took and how reading it
    /// ended.
    pub fn http_exchange(&self, port: u16, request: &[u8]) -> Exchange {
        let ns = &self.director;
        std::thread::scope(|s| {
            s.spawn(|| {
                let _in = ns.enter();
                let start = Instant::now();
                let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to the daemon");
                c.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
                c.write_all(request).expect("send request");
                let mut out = Vec::new();
                let read_error = c.read_to_end(&mut out).err();
                Exchange {
                    raw: String::from_utf8_lossy(&out).into_owned(),
                    took: start.elapsed(),
                    read_error,
                }
            })
            .join()
            .expect("http thread")
        })
    }
}

/// How long [`DaemonLab::http`] waits for the whole answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One request and what came back.
#[derive(Debug)]
pub struct Exchange {
    pub raw: String,
    /// From the connect to the end of the answer (or the error).
    pub took: Duration,
    /// Why reading stopped, when not at the end of the answer (a timeout, a reset).
    pub read_error: Option<std::io::Error>,
}

impl Exchange {
    /// What happened, for a failure message.
    pub fn describe(&self) -> String {
        let how = match &self.read_error {
            Some(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                format!("no complete answer within {HTTP_TIMEOUT:?}")
            }
            Some(e) => format!("reading failed ({e})"),
            None if self.raw.is_empty() => {
                "the server closed the connection without answering".into()
            }
            None => "the server closed the connection".into(),
        };
        format!(
            "not an HTTP response after {:.3} s: {how}; got {:?}",
            self.took.as_secs_f64(),
            self.raw
        )
    }
}

/// (status code, body) of a raw HTTP response, `None` when it is not one.
pub fn try_parse_response(raw: &str) -> Option<(u16, String)> {
    let code = raw
        .strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// (status code, body) of a raw HTTP response.
pub fn parse_response(raw: &str) -> (u16, String) {
    try_parse_response(raw).unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"))
}
