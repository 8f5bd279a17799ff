//! Identity of a network namespace on kernels without `SO_NETNS_COOKIE` (before 5.14).
//!
//! An nsfs inode number is reused once its namespace is gone, so alone it cannot tell a
//! namespace from a later one. Every namespace gets, when it is created, its own
//! rtnetlink kernel socket (`net->rtnl`, portid 0), which lives exactly as long as the
//! namespace; a socket's cookie (`sock_gen_cookie`, a 64-bit counter that never repeats
//! within a boot) is as unique as a namespace cookie. `NETLINK_SOCK_DIAG` reports, from
//! inside the namespace, every NETLINK_ROUTE socket with its cookie: read-only, and
//! available since Linux 3.10 (`netlink_diag`, loaded on demand by the kernel). When it is
//! not available the caller gets `None` and the loader falls back to trusting pins only
//! while their program is on the hook (`unverified`).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use crate::nlmsg::{self, NLMSG_HDRLEN, u32_at};

/// `SOCK_DIAG_BY_FAMILY` (include/uapi/linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NDIAG_SHOW_GROUPS` (include/uapi/linux/netlink_diag.h).
const NDIAG_SHOW_GROUPS: u32 = 0x2;
/// `NETLINK_DIAG_GROUPS`.
const NETLINK_DIAG_GROUPS: u16 = 1;
/// `struct netlink_diag_msg`.
const DIAG_MSG_LEN: usize = 28;

/// The request: a dump of the NETLINK_ROUTE sockets of the caller's namespace, with
/// their multicast groups.
fn request(seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(NLMSG_HDRLEN + 20);
    b.extend_from_slice(&((NLMSG_HDRLEN + 20) as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // struct netlink_diag_req
    b.push(libc::AF_NETLINK as u8); // sdiag_family
    b.push(libc::NETLINK_ROUTE as u8); // sdiag_protocol
    b.extend_from_slice(&0u16.to_ne_bytes()); // pad
    b.extend_from_slice(&0u32.to_ne_bytes()); // ndiag_ino
    b.extend_from_slice(&NDIAG_SHOW_GROUPS.to_ne_bytes()); // ndiag_show
    b.extend_from_slice(&[0; 8]); // ndiag_cookie (not a filter in dumps)
    b
}

/// One `netlink_diag_msg`: (protocol, portid, cookie, subscribed to any group).
fn parse_msg(m: &[u8]) -> Option<(u8, u32, u64, bool)> {
    if m.len() < DIAG_MSG_LEN {
        return None;
    }
    let protocol = m[2];
    let portid = u32_at(m, 4)?;
    let cookie = u64::from(u32_at(m, 20)?) | (u64::from(u32_at(m, 24)?) << 32);
    let groups = nlmsg::attributes(&m[DIAG_MSG_LEN..])
        .any(|(kind, v)| kind == NETLINK_DIAG_GROUPS && v.iter().any(|&b| b != 0));
    Some((protocol, portid, cookie, groups))
}

/// Kernel sockets in a dump reply: portid 0 and no multicast subscription (a user
/// socket that only joined groups, without binding, also shows portid 0).
fn kernel_socket_cookies(reply: &[u8], seq: u32, out: &mut Vec<u64>) -> io::Result<bool> {
    for m in nlmsg::messages(reply) {
        let m = m.map_err(|nlmsg::Truncated| {
            io::Error::new(io::ErrorKind::InvalidData, "truncated sock_diag reply")
        })?;
        if m.seq != seq {
            continue;
        }
        match i32::from(m.kind) {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                let errno = u32_at(m.payload, 0).map_or(0, |e| e as i32);
                return Err(io::Error::from_raw_os_error(-errno));
            }
            _ if m.kind == SOCK_DIAG_BY_FAMILY => {
                if let Some((protocol, 0, cookie, false)) = parse_msg(m.payload)
                    && i32::from(protocol) == libc::NETLINK_ROUTE
                {
                    out.push(cookie);
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The cookie of the calling thread's namespace's rtnetlink kernel socket; `None` when
/// sock_diag cannot report it (no `netlink_diag`) or the answer is not exactly one socket.
pub(super) fn rtnl_kernel_socket_cookie() -> Option<u64> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let seq = 1;
    let req = request(seq);
    // SAFETY: valid fd and buffer; the kernel is the default destination.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return None;
    }
    let mut cookies = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
        if n == 0 {
            return None;
        }
        match kernel_socket_cookies(&buf[..n as usize], seq, &mut cookies) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return None,
        }
    }
    match cookies[..] {
        [c] if c != 0 && c != u64::MAX => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlmsg::u16_at;

    fn msg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn diag(protocol: u8, portid: u32, cookie: u64, groups: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![16, 2, protocol, 7];
        b.extend_from_slice(&portid.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&1234u32.to_ne_bytes());
        b.extend_from_slice(&(cookie as u32).to_ne_bytes());
        b.extend_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        if let Some(g) = groups {
            b.extend_from_slice(&((4 + g.len()) as u16).to_ne_bytes());
            b.extend_from_slice(&NETLINK_DIAG_GROUPS.to_ne_bytes());
            b.extend_from_slice(g);
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        b
    }

    #[test]
    fn only_the_kernel_socket_is_taken() {
        let mut reply = Vec::new();
        // The kernel socket: portid 0, no groups (or an all-zero bitmap).
        reply.extend(msg(20, 1, &diag(0, 0, 0x1_0000_0005, Some(&[0, 0, 0, 0]))));
        // A bound user socket, one joined to a group without binding, another protocol,
        // another request's sequence.
        reply.extend(msg(20, 1, &diag(0, 4242, 9, None)));
        reply.extend(msg(20, 1, &diag(0, 0, 10, Some(&[0, 1, 0, 0]))));
        reply.extend(msg(20, 1, &diag(4, 0, 11, None)));
        reply.extend(msg(20, 2, &diag(0, 0, 12, None)));
        let mut out = Vec::new();
        assert!(!kernel_socket_cookies(&reply, 1, &mut out).expect("parsed"));
        assert_eq!(out, vec![0x1_0000_0005]);
        assert!(kernel_socket_cookies(&msg(3, 1, &[0; 4]), 1, &mut out).expect("done"));
        let err = kernel_socket_cookies(&msg(2, 1, &(-libc::ENOENT).to_ne_bytes()), 1, &mut out)
            .expect_err("error");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert!(kernel_socket_cookies(&reply[..reply.len() - 3], 1, &mut out).is_err());
    }

    #[test]
    fn the_request_is_a_netlink_route_dump() {
        let r = request(7);
        assert_eq!(r.len(), 36);
        assert_eq!(u32_at(&r, 0), Some(36));
        assert_eq!(u16_at(&r, 4), Some(SOCK_DIAG_BY_FAMILY));
        assert_eq!(u32_at(&r, 8), Some(7));
        assert_eq!((r[16], r[17]), (libc::AF_NETLINK as u8, 0));
        assert_eq!(u32_at(&r, 24), Some(NDIAG_SHOW_GROUPS));
    }

    /// On a real kernel: the same namespace gives the same cookie twice, and a new one
    /// another (root and netlink_diag needed; skipped without them).
    #[test]
    fn stable_and_distinct_per_namespace() {
        let Some(here) = rtnl_kernel_socket_cookie() else {
            eprintln!("SKIP: no sock_diag for netlink here");
            return;
        };
        assert_eq!(rtnl_kernel_socket_cookie(), Some(here));
        let other = std::thread::spawn(|| {
            // SAFETY: unshare of the calling thread's network namespace only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            rtnl_kernel_socket_cookie()
        })
        .join()
        .expect("thread");
        match other {
            Some(o) => assert_ne!(o, here),
            None => eprintln!("SKIP: cannot unshare a network namespace"),
        }
    }
}
