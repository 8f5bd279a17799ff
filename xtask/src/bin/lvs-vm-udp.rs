//! Guest helper of `cargo xtask vm-test` (the UDP scenario): a DNS-like UDP service and its
//! client. busybox has no UDP server that answers from the address it was asked on, and a
//! shell loop around `nc -u -l` drops the queries that arrive between two listeners.
//!
//! ```text
//! lvs-vm-udp serve ADDR:PORT NAME LOG
//!     answers each datagram "ID" with "served-by=NAME id=ID" and appends ID to LOG;
//!     bound to ADDR (the VIP), so answers leave from the VIP, as a DR real server's must.
//! lvs-vm-udp client ADDR:PORT PREFIX COUNT TIMEOUT_MS
//!     COUNT sequential queries "PREFIX-i", each from a fresh socket (a new IPVS connection),
//!     one line each: "PREFIX-i ok NAME" or "PREFIX-i fail REASON".
//! ```
use std::{
    io::{ErrorKind, Write as _},
    net::{SocketAddr, UdpSocket},
    process::ExitCode,
    time::Duration,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr, name, log] => serve(addr, name, log),
        ["client", addr, prefix, count, timeout_ms] => client(addr, prefix, count, timeout_ms),
        _ => Err(
            "usage: lvs-vm-udp serve ADDR:PORT NAME LOG | client ADDR:PORT PREFIX COUNT TIMEOUT_MS"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-vm-udp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    addr.parse()
        .map_err(|e| format!("{addr:?} is not ADDR:PORT ([ADDR]:PORT for IPv6): {e}"))
}

fn serve(addr: &str, name: &str, log: &str) -> Result<(), String> {
    let addr = parse_addr(addr)?;
    let sock = UdpSocket::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {log}: {e}"))?;
    let mut buf = [0u8; 512];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("recv on {addr}: {e}")),
        };
        let id = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
        writeln!(log, "{id}").map_err(|e| format!("writing the log: {e}"))?;
        let reply = format!("served-by={name} id={id}\n");
        // A lost answer is the client's timeout, not the server's end.
        sock.send_to(reply.as_bytes(), peer).ok();
    }
}

fn client(addr: &str, prefix: &str, count: &str, timeout_ms: &str) -> Result<(), String> {
    let addr = parse_addr(addr)?;
    let count: u32 = count.parse().map_err(|e| format!("COUNT {count:?}: {e}"))?;
    let timeout = Duration::from_millis(
        timeout_ms
            .parse()
            .map_err(|e| format!("TIMEOUT_MS {timeout_ms:?}: {e}"))?,
    );
    let any: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().map_err(|e| format!("{e}"))?
    } else {
        "0.0.0.0:0".parse().map_err(|e| format!("{e}"))?
    };
    let stdout = std::io::stdout();
    for i in 1..=count {
        let id = format!("{prefix}-{i}");
        let verdict = query(any, addr, &id, timeout);
        writeln!(stdout.lock(), "{id} {verdict}").map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

/// One query from a fresh socket: "ok NAME" or "fail REASON".
fn query(any: SocketAddr, addr: SocketAddr, id: &str, timeout: Duration) -> String {
    let sock = match UdpSocket::bind(any) {
        Ok(s) => s,
        Err(e) => return format!("fail bind({e})"),
    };
    if let Err(e) = sock
        .connect(addr)
        .and_then(|()| sock.set_read_timeout(Some(timeout)))
        .and_then(|()| sock.send(id.as_bytes()).map(|_| ()))
    {
        return format!("fail {}", reason(&e));
    }
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) => {
            let reply = String::from_utf8_lossy(&buf[..n]);
            let mut name = None;
            let mut got_id = None;
            for word in reply.split_whitespace() {
                if let Some(v) = word.strip_prefix("served-by=") {
                    name = Some(v.to_owned());
                } else if let Some(v) = word.strip_prefix("id=") {
                    got_id = Some(v.to_owned());
                }
            }
            match (name, got_id) {
                (Some(name), Some(got)) if got == id => format!("ok {name}"),
                _ => "fail wrong-answer".into(),
            }
        }
        Err(e) => format!("fail {}", reason(&e)),
    }
}

fn reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timeout",
        ErrorKind::ConnectionRefused => "refused",
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => "no-route-to-host",
        _ => "other",
    }
}
