//! Raw frames onto a link with AF_PACKET (what a real NIC would deliver to the peer).

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use crate::netns::NetNs;

/// An AF_PACKET socket bound to one interface of one namespace.
pub struct Sender {
    fd: OwnedFd,
    ifindex: i32,
}

impl Sender {
    /// Opens a socket on `dev` inside `ns` (the socket stays in that namespace).
    pub fn open(ns: &NetNs, dev: &str) -> Self {
        let _guard = ns.enter();
        let name = lvs_loader::IfName::new(dev).expect("interface name");
        let ifindex = lvs_loader::sys::ifindex(&name)
            .unwrap_or_else(|| panic!("no {dev} in {}", ns.name)) as i32;
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Self { fd, ifindex }
    }

    /// Turns on `PACKET_VNET_HDR`: every frame handed to this socket must then start
    /// with a 10-byte `virtio_net_hdr` (see [`vnet_hdr_linear`]). With its `hdr_len` set
    /// to the frame length, the kernel builds a fully linear skb, like a NIC driver does
    /// for small packets; without it, AF_PACKET puts everything past the Ethernet header
    /// in page fragments.
    pub fn enable_vnet_hdr(&self) -> std::io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: valid fd and option buffer.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn addr(&self) -> libc::sockaddr_ll {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        sa
    }

    /// Sends one frame (Ethernet header included).
    pub fn send(&self, frame: &[u8]) {
        let sa = self.addr();
        // SAFETY: valid buffer and address.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            frame.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends `frames` with one sendmmsg(2) call per batch; returns how many went out.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> usize {
        let sa = self.addr();
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut _,
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: zeroed mmsghdr is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&sa as *const libc::sockaddr_ll) as *mut _;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                m.msg_hdr.msg_iov = iov as *mut libc::iovec;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: msgs point at live iovecs and sa.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs[sent..].as_mut_ptr(),
                    (msgs.len() - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN)
                {
                    continue;
                }
                panic!("sendmmsg: {e}");
            }
            sent += n as usize;
        }
        sent
    }
}

/// `frame` prefixed with a `virtio_net_hdr` asking for a linear skb of the whole frame
/// (no checksum offload, no GSO), for a socket with [`Sender::enable_vnet_hdr`].
pub fn vnet_hdr_linear(frame: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + frame.len());
    v.extend_from_slice(&[0, 0]); // flags, gso_type (VIRTIO_NET_HDR_GSO_NONE)
    v.extend_from_slice(&(frame.len() as u16).to_le_bytes()); // hdr_len
    v.extend_from_slice(&[0; 6]); // gso_size, csum_start, csum_offset
    v.extend_from_slice(frame);
    v
}

/// Frames at least this long leave a packet socket as an skb with only the Ethernet
/// header linear and the rest in page fragments (`packet_alloc_skb` copies a frame
/// shorter than a page, less its headroom, whole into the linear data): a veth carrying
/// them needs an MTU above it ([`JUMBO_MTU`]).
pub const PAGED_FRAME_LEN: usize = 5000;
/// The MTU of a veth that carries [`PAGED_FRAME_LEN`]-byte frames.
pub const JUMBO_MTU: u32 = 9000;

/// `frame` padded with zeros (Ethernet padding past the IP packet, which the IP layer
/// trims) to [`PAGED_FRAME_LEN`] bytes, so that its headers arrive in a page fragment.
pub fn paged(frame: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    if v.len() < PAGED_FRAME_LEN {
        v.resize(PAGED_FRAME_LEN, 0);
    }
    v
}
