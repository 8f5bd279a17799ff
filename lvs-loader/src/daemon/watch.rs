//! rtnetlink notifications: a NETLINK_ROUTE socket in the link (`RTNLGRP_LINK`) and tc
//! (`RTNLGRP_TC`) multicast groups, so that a deleted, re-created, renamed, moved or
//! downed interface, and a removed qdisc or filter, are seen the moment they happen.
//! Messages are read by their fixed headers (every link and tc message has the interface
//! index at the same place), so no attribute the library does not know can hide one.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use tokio::io::unix::AsyncFd;

use crate::{
    ifname::IfName,
    nlmsg::{self, u32_at},
};

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_TC: u32 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;

/// Something changed on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A link appeared, changed (name, state, namespace) or went away.
    Link {
        ifindex: u32,
        name: Option<IfName>,
        deleted: bool,
    },
    /// A qdisc or filter of this interface was added or removed.
    Tc { ifindex: u32 },
    /// Notifications were lost (the socket's buffer overran): look at everything.
    Overrun,
}

/// The subscribed socket.
pub struct Watch {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

fn membership(fd: &OwnedFd, group: u32) -> io::Result<()> {
    // SAFETY: valid fd and option buffer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            (&group as *const u32).cast(),
            std::mem::size_of::<u32>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Watch {
    /// Opens and subscribes the socket (in the calling thread's namespace).
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 lets the kernel pick.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: valid fd and address.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // A bigger buffer makes overruns (a storm of container veths) rarer; an overrun
        // is still handled (everything is looked at again).
        let size: libc::c_int = 1 << 20;
        // SAFETY: valid fd and option buffer.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        membership(&fd, RTNLGRP_LINK)?;
        membership(&fd, RTNLGRP_TC)?;
        Ok(Self {
            // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as
            // the AsyncFd that owns it.
            fd: unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits for notifications and returns all that are queued.
    pub async fn next(&mut self) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let mut guard = self.fd.readable().await?;
            loop {
                let buf = &mut self.buf;
                // SAFETY: valid fd and buffer.
                let n = unsafe {
                    libc::recv(
                        guard.get_inner().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => {
                            guard.clear_ready();
                            break;
                        }
                        Some(libc::EINTR) => continue,
                        Some(libc::ENOBUFS) => {
                            out.push(Event::Overrun);
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
                parse(&self.buf[..n as usize], &mut out);
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

/// The `IFLA_IFNAME` attribute of a link message's payload.
fn link_name(payload: &[u8]) -> Option<IfName> {
    let (_, v) =
        nlmsg::attributes(payload.get(IFINFOMSG_LEN..)?).find(|&(kind, _)| kind == IFLA_IFNAME)?;
    let v = v.split(|&c| c == 0).next().unwrap_or(v);
    IfName::new(v).ok()
}

/// The events of one datagram (several messages may share it).
pub fn parse(data: &[u8], out: &mut Vec<Event>) {
    for m in nlmsg::messages(data) {
        let Ok(m) = m else {
            // A message we can't delimit: look at everything rather than miss one.
            out.push(Event::Overrun);
            break;
        };
        let ifindex = u32_at(m.payload, 4).unwrap_or(0);
        match m.kind {
            RTM_NEWLINK | RTM_DELLINK => out.push(Event::Link {
                ifindex,
                name: link_name(m.payload),
                deleted: m.kind == RTM_DELLINK,
            }),
            RTM_NEWQDISC | RTM_DELQDISC | RTM_NEWTFILTER | RTM_DELTFILTER => {
                out.push(Event::Tc { ifindex })
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlmsg::NLMSG_HDRLEN;

    fn msg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn link(ifindex: u32, name: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&[0; 8]);
        // An unrelated attribute first, then IFLA_IFNAME.
        p.extend_from_slice(&8u16.to_ne_bytes());
        p.extend_from_slice(&4u16.to_ne_bytes());
        p.extend_from_slice(&1500u32.to_ne_bytes());
        let len = 4 + name.len() + 1;
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        p.extend_from_slice(name);
        p.push(0);
        while !p.len().is_multiple_of(4) {
            p.push(0);
        }
        p
    }

    #[test]
    fn parses_link_and_tc_messages() {
        let mut data = msg(RTM_NEWLINK, &link(7, b"eth0"));
        data.extend(msg(RTM_DELLINK, &link(8, b"v\xff")));
        let mut tc = vec![0u8; 4];
        tc.extend_from_slice(&9u32.to_ne_bytes());
        tc.extend_from_slice(&[0; 12]);
        data.extend(msg(RTM_DELTFILTER, &tc));
        data.extend(msg(RTM_NEWQDISC, &tc));
        data.extend(msg(24, &tc)); // RTM_NEWROUTE: ignored
        let mut out = Vec::new();
        parse(&data, &mut out);
        assert_eq!(
            out,
            vec![
                Event::Link {
                    ifindex: 7,
                    name: Some(IfName::new("eth0").unwrap()),
                    deleted: false
                },
                Event::Link {
                    ifindex: 8,
                    name: Some(IfName::new(b"v\xff").unwrap()),
                    deleted: true
                },
                Event::Tc { ifindex: 9 },
                Event::Tc { ifindex: 9 },
            ]
        );
    }

    #[test]
    fn a_broken_message_means_look_at_everything() {
        let mut data = msg(RTM_NEWLINK, &link(7, b"eth0"));
        data[0] = 0xff; // length past the datagram
        let mut out = Vec::new();
        parse(&data, &mut out);
        assert_eq!(out, vec![Event::Overrun]);
    }
}
