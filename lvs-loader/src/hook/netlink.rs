//! The clsact qdisc and cls_bpf filters over rtnetlink (netlink-packet-route on a
//! synchronous NETLINK_ROUTE socket): add with explicit priority and handle, list with
//! program ids, delete exactly one filter, delete the qdisc only when it is ours and
//! empty. No `tc` binary involved.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `ETH_P_ALL` in network byte order, as `tcm_info`'s protocol half wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `TC_H_CLSACT`: parent of the clsact qdisc.
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
/// clsact's own handle (`ffff:`).
const CLSACT_HANDLE: u32 = 0xFFFF_0000;

/// Which side of the clsact qdisc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn parent(self) -> u32 {
        match self {
            Self::Ingress => 0xFFFF_FFF2,
            Self::Egress => 0xFFFF_FFF3,
        }
    }
}

/// One tc filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub direction: Direction,
    pub priority: u16,
    pub handle: u32,
    /// `bpf`, `u32`, `flower`, ...
    pub kind: String,
    /// cls_bpf: the program's id and name.
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
}

fn socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

/// Sends one request; returns the messages of a dump, or nothing for an acked change.
fn request(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let sock = socket()?;
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | flags;
    hdr.sequence_number = 1;
    let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
    req.finalize();
    let mut buf = vec![0; req.header.length as usize];
    req.serialize(&mut buf[..]);
    sock.send(&buf, 0)?;
    let mut out = Vec::new();
    loop {
        let (data, _) = sock.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let msg: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&data[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    };
                }
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
            if len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink message of length 0",
                ));
            }
            offset += len;
        }
    }
}

fn tc_message(ifindex: u32, parent: u32, handle: u32, info: u32) -> TcMessage {
    let mut m = TcMessage::with_index(ifindex as i32);
    m.header.parent = TcHandle::from(parent);
    m.header.handle = TcHandle::from(handle);
    m.header.info = info;
    m
}

/// Adds a clsact qdisc; `Ok(false)` when one is already there.
pub fn clsact_add(ifindex: u32) -> io::Result<bool> {
    let mut m = tc_message(ifindex, TC_H_CLSACT, CLSACT_HANDLE, 0);
    m.attributes.push(TcAttribute::Kind("clsact".into()));
    match request(
        RouteNetlinkMessage::NewQueueDiscipline(m),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `ifindex` has a clsact qdisc.
pub fn has_clsact(ifindex: u32) -> io::Result<bool> {
    let mut m = TcMessage::with_index(ifindex as i32);
    m.header.index = ifindex as i32;
    let all = request(RouteNetlinkMessage::GetQueueDiscipline(m), NLM_F_DUMP)?;
    Ok(all.iter().any(|m| match m {
        RouteNetlinkMessage::NewQueueDiscipline(q) => {
            q.header.index == ifindex as i32
                && q.attributes
                    .iter()
                    .any(|a| matches!(a, TcAttribute::Kind(k) if k == "clsact"))
        }
        _ => false,
    }))
}

/// Deletes the clsact qdisc of `ifindex` (and every filter on it).
fn clsact_del(ifindex: u32) -> io::Result<()> {
    let mut m = tc_message(ifindex, TC_H_CLSACT, CLSACT_HANDLE, 0);
    m.attributes.push(TcAttribute::Kind("clsact".into()));
    request(RouteNetlinkMessage::DelQueueDiscipline(m), NLM_F_ACK).map(drop)
}

/// Deletes the clsact qdisc unless any filter (ours or anyone's, either direction) is on
/// it. `Ok(true)` when it was deleted.
pub fn clsact_del_if_empty(ifindex: u32) -> io::Result<bool> {
    if !has_clsact(ifindex)? {
        return Ok(false);
    }
    for dir in [Direction::Ingress, Direction::Egress] {
        if !filters(ifindex, dir)?.is_empty() {
            return Ok(false);
        }
    }
    match clsact_del(ifindex) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The filters on one side of `ifindex`'s clsact qdisc, in priority order. Empty when
/// there is no clsact qdisc (or no such device).
pub fn filters(ifindex: u32, dir: Direction) -> io::Result<Vec<Filter>> {
    let m = tc_message(ifindex, dir.parent(), 0, 0);
    let msgs = match request(RouteNetlinkMessage::GetTrafficFilter(m), NLM_F_DUMP) {
        Ok(m) => m,
        // No qdisc to hold filters, or no such device.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOENT | libc::ENODEV)
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for msg in msgs {
        let RouteNetlinkMessage::NewTrafficFilter(f) = msg else {
            continue;
        };
        let handle = u32::from(f.header.handle);
        if handle == 0 {
            // The chain head of a priority, not a filter.
            continue;
        }
        let mut filter = Filter {
            direction: dir,
            priority: (f.header.info >> 16) as u16,
            handle,
            kind: String::new(),
            prog_id: None,
            prog_name: None,
        };
        for a in &f.attributes {
            match a {
                TcAttribute::Kind(k) => filter.kind = k.clone(),
                TcAttribute::Options(opts) => {
                    for o in opts {
                        match o {
                            TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => {
                                filter.prog_id = Some(*id)
                            }
                            TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => {
                                filter.prog_name = Some(n.clone())
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(filter);
    }
    out.sort_by_key(|f| (f.priority, f.handle));
    Ok(out)
}

/// Creates a direct-action cls_bpf filter of `prog_fd` at exactly (`priority`, `handle`)
/// on the ingress side; fails with EEXIST rather than replacing anything.
pub fn filter_add(
    ifindex: u32,
    priority: u16,
    handle: u32,
    prog_fd: std::os::fd::BorrowedFd<'_>,
    name: &str,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE);
    let mut m = tc_message(ifindex, Direction::Ingress.parent(), handle, info);
    m.attributes.push(TcAttribute::Kind("bpf".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog_fd.as_raw_fd() as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName(name.into())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    request(
        RouteNetlinkMessage::NewTrafficFilter(m),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    )
    .map(drop)
}

/// Points the existing ingress filter (`priority`, `handle`) at `prog_fd`: cls_bpf swaps
/// the program in one RCU step, so every packet sees the old or the new one. Fails
/// (ENOENT) rather than creating a filter that is not there.
pub fn filter_replace(
    ifindex: u32,
    priority: u16,
    handle: u32,
    prog_fd: std::os::fd::BorrowedFd<'_>,
    name: &str,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    if priority == 0 || handle == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE);
    let mut m = tc_message(ifindex, Direction::Ingress.parent(), handle, info);
    m.attributes.push(TcAttribute::Kind("bpf".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog_fd.as_raw_fd() as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName(name.into())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    request(
        RouteNetlinkMessage::NewTrafficFilter(m),
        NLM_F_ACK | NLM_F_REPLACE,
    )
    .map(drop)
}

/// Deletes exactly the ingress filter (`priority`, `handle`). `Ok(false)` if it is not
/// there. Priority and handle 0 are refused: the kernel reads them as "every filter".
pub fn filter_del(ifindex: u32, priority: u16, handle: u32) -> io::Result<bool> {
    if priority == 0 || handle == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE);
    let mut m = tc_message(ifindex, Direction::Ingress.parent(), handle, info);
    m.attributes.push(TcAttribute::Kind("bpf".into()));
    match request(RouteNetlinkMessage::DelTrafficFilter(m), NLM_F_ACK) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::EINVAL | libc::ENODEV)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A priority for a new filter that runs before every filter already there (like the
/// kernel's own choice when none is given), and that no filter uses.
pub fn free_priority(existing: &[Filter]) -> u16 {
    const DEFAULT: u16 = 0xC000;
    let used: std::collections::BTreeSet<u16> = existing.iter().map(|f| f.priority).collect();
    let start = used.first().map_or(DEFAULT, |&p| p.saturating_sub(1));
    (1..=start)
        .rev()
        .chain((start + 1)..=u16::MAX)
        .find(|p| !used.contains(p))
        .unwrap_or(DEFAULT)
}

/// The priority a new filter of ours gets for `order`: [`Order::First`] takes 1 when it
/// is free (nothing can then be put in front of it), else runs before every filter
/// already there when a priority is free below them; [`Order::Last`] goes above the
/// highest; [`Order::Priority`] is exactly what was asked for.
pub fn priority_for(existing: &[Filter], order: super::Order) -> u16 {
    use super::Order;
    let used: std::collections::BTreeSet<u16> = existing.iter().map(|f| f.priority).collect();
    match order {
        Order::Priority(p) => p,
        Order::First if !used.contains(&1) => 1,
        Order::First => free_priority(existing),
        Order::Last => match used.last() {
            None => 0xC000,
            Some(&top) => (top.saturating_add(1)..=u16::MAX)
                .chain((1..top).rev())
                .find(|p| !used.contains(p))
                .unwrap_or(0xC000),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(priority: u16) -> Filter {
        Filter {
            direction: Direction::Ingress,
            priority,
            handle: 1,
            kind: "u32".into(),
            prog_id: None,
            prog_name: None,
        }
    }

    #[test]
    fn priorities_go_in_front_and_never_collide() {
        assert_eq!(free_priority(&[]), 0xC000);
        assert_eq!(free_priority(&[f(60000)]), 59999);
        assert_eq!(free_priority(&[f(5), f(9)]), 4);
        // Nothing free below the first: the first free one above it.
        assert_eq!(free_priority(&[f(1), f(2)]), 3);
    }

    #[test]
    fn priorities_per_order() {
        use crate::hook::Order;
        assert_eq!(priority_for(&[], Order::First), 1);
        assert_eq!(priority_for(&[f(60000)], Order::First), 1);
        // 1 taken: nothing can run before it; the lowest free one.
        assert_eq!(priority_for(&[f(1), f(5)], Order::First), 2);
        assert_eq!(priority_for(&[], Order::Last), 0xC000);
        assert_eq!(priority_for(&[f(1), f(60000)], Order::Last), 60001);
        assert_eq!(priority_for(&[f(u16::MAX)], Order::Last), u16::MAX - 1);
        assert_eq!(priority_for(&[f(7)], Order::Priority(7)), 7);
    }
}
