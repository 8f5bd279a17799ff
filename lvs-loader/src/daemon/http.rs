//! A deliberately small HTTP/1.1 server for `/metrics` and `/healthz`: GET and HEAD only,
//! the request head bounded (8 KiB) and timed (5 s), one response per connection
//! (`Connection: close`), at most a few connections at once (one more is answered `503`
//! at once, never dropped without a word). Answers are produced off the event loop (they
//! read maps and hooks) and written with a timeout; a large `/metrics` is streamed rather
//! than built whole.

use std::{
    io::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::AsyncReadExt as _,
    net::{TcpListener, TcpStream},
};

/// Largest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time allowed to send the request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for each write of the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are answered `503 Service Unavailable` at once
/// (a scraper must get an answer, not an empty reply).
pub const MAX_CONNECTIONS: usize = 8;
/// Time allowed for writing the `503` of a connection over [`MAX_CONNECTIONS`].
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the daemon answers with.
pub trait Handler: Send + Sync + 'static {
    /// Writes the whole response for `path` to `out` (status line, headers, body), on a
    /// blocking thread. `head`: no body (HEAD).
    fn respond(&self, path: &str, head: bool, out: &mut dyn std::io::Write) -> std::io::Result<()>;
}

/// A request line, or why it is refused (status, reason).
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Get { path: String, head: bool },
    Refused(u16, &'static str),
}

/// Parses the request head (everything up to the empty line).
pub fn parse_request(head: &[u8]) -> Request {
    let line = head.split(|&c| c == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Refused(400, "Bad Request");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Refused(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Refused(505, "HTTP Version Not Supported");
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::Refused(405, "Method Not Allowed"),
    };
    // The query string is ignored (Prometheus may add one).
    let path = target.split('?').next().unwrap_or_default();
    Request::Get {
        path: path.to_owned(),
        head,
    }
}

/// The status line and headers of a response.
pub fn response_head(
    status: u16,
    reason: &str,
    content_type: &str,
    length: Option<usize>,
) -> String {
    let mut h = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nConnection: close\r\nCache-Control: no-store\r\n"
    );
    if let Some(n) = length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    if status == 405 {
        h.push_str("Allow: GET, HEAD\r\n");
    }
    h.push_str("\r\n");
    h
}

/// A small text response.
pub fn text_response(
    out: &mut dyn std::io::Write,
    status: u16,
    reason: &str,
    body: &str,
    head: bool,
) -> std::io::Result<()> {
    out.write_all(
        response_head(
            status,
            reason,
            "text/plain; charset=utf-8",
            Some(body.len()),
        )
        .as_bytes(),
    )?;
    if !head {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

/// Reads the request head: up to the empty line, at most [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!buf.is_empty()).then_some(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Some(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Some(buf);
        }
    }
}

async fn serve(mut stream: TcpStream, handler: Arc<dyn Handler>) {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await;
    let Ok(Some(head)) = head else {
        return;
    };
    let request = if head.len() > MAX_REQUEST {
        Request::Refused(431, "Request Header Fields Too Large")
    } else {
        parse_request(&head)
    };
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    // The answer is produced and written on a blocking thread, with write timeouts.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std_stream.set_nonblocking(false);
        let _ = std_stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut out = Counted {
            inner: std::io::BufWriter::with_capacity(64 * 1024, &std_stream),
            written: 0,
        };
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match request {
            Request::Get { path, head } => handler.respond(&path, head, &mut out),
            Request::Refused(status, reason) => text_response(
                &mut out,
                status,
                reason,
                &format!("{status} {reason}\n"),
                false,
            ),
        }));
        // A handler that failed before its status line still answers: 500.
        if out.written == 0 && !matches!(answered, Ok(Ok(()))) {
            let _ = text_response(
                &mut out,
                500,
                "Internal Server Error",
                "500 Internal Server Error (see the daemon's log)\n",
                false,
            );
        }
        let _ = out.flush();
        drop(out);
        let _ = std_stream.shutdown(std::net::Shutdown::Write);
    })
    .await;
}

/// A writer that counts what the handler gave it.
struct Counted<W> {
    inner: W,
    written: usize,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` on a thread of its own, with its own runtime: nothing the event
/// loop does (netlink, timers, logging, memory trimming) delays an accept or a request
/// head. The thread (and its blocking workers) is in the calling thread's network
/// namespace.
pub fn spawn_server(listener: TcpListener, handler: Arc<dyn Handler>) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(MAX_CONNECTIONS)
        .thread_name("lvs-loader-http")
        .build()?;
    std::thread::Builder::new()
        .name("lvs-loader-http".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => run(l, handler).await,
                    Err(e) => super::log::error(format!("/metrics and /healthz: {e}")),
                }
            });
        })?;
    Ok(())
}

/// Accepts connections forever.
pub async fn run(listener: TcpListener, handler: Arc<dyn Handler>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and friends: don't spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(slot) = Slot::take(&active) else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            serve(stream, handler).await;
            drop(slot);
        });
    }
}

/// One of the [`MAX_CONNECTIONS`] places, given back when dropped (also when the
/// connection's task ends early).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Option<Self> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(active.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection over [`MAX_CONNECTIONS`]: `503` with `Retry-After`, written without
/// waiting for the request (a small answer fits the socket buffer; the request is not
/// read, so nothing is parsed for a client the server has no room for).
async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let body = "503 Service Unavailable: too many connections\n";
    let mut answer = response_head(
        503,
        "Service Unavailable",
        "text/plain; charset=utf-8",
        Some(body.len()),
    );
    answer.insert_str(answer.len() - 2, "Retry-After: 1\r\n");
    answer.push_str(body);
    let _ = tokio::time::timeout(BUSY_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent (a little), so that closing does not reset the
        // connection before it read the answer.
        let mut sink = [0u8; 1024];
        let mut left = MAX_REQUEST;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Writes a streamed body's head (no length: the body ends when the connection closes).
pub fn stream_head(out: &mut dyn std::io::Write, content_type: &str) -> std::io::Result<()> {
    out.write_all(response_head(200, "OK", content_type, None).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `/ok`; panics on anything else before writing a byte.
    struct Panicky;

    impl Handler for Panicky {
        fn respond(
            &self,
            path: &str,
            head: bool,
            out: &mut dyn std::io::Write,
        ) -> std::io::Result<()> {
            assert_eq!(path, "/ok", "a handler bug");
            text_response(out, 200, "OK", "ok\n", head)
        }
    }

    /// One request on loopback to a server run by `rt`: the raw answer.
    fn get(addr: SocketAddr, path: &str) -> String {
        use std::io::Read as _;
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_handler_that_panics_still_answers_500() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(bind("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(run(listener, Arc::new(Panicky)));
        let (boom, ok) = rt.block_on(async {
            tokio::task::spawn_blocking(move || (get(addr, "/boom"), get(addr, "/ok")))
                .await
                .unwrap()
        });
        assert!(boom.starts_with("HTTP/1.1 500 "), "{boom:?}");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok:?}");
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Get {
                path: "/metrics".into(),
                head: false
            }
        );
        assert_eq!(
            parse_request(b"HEAD /healthz?x=1 HTTP/1.0\r\n\r\n"),
            Request::Get {
                path: "/healthz".into(),
                head: true
            }
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::Refused(405, "Method Not Allowed")
        );
        assert_eq!(
            parse_request(b"GET /metrics\r\n\r\n"),
            Request::Refused(400, "Bad Request")
        );
        assert_eq!(
            parse_request(b"GET / SPDY/3\r\n\r\n"),
            Request::Refused(505, "HTTP Version Not Supported")
        );
        assert_eq!(
            parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Request::Refused(400, "Bad Request")
        );
        assert!(
            response_head(405, "Method Not Allowed", "text/plain", Some(0))
                .contains("Allow: GET, HEAD\r\n")
        );
    }
}
