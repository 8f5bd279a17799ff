//! Unit tests of the capture reader.

use super::ng::{NG_EPB, NG_IDB, NG_SHB};
use super::*;

fn classic_file(linktype: u32, packets: &[(&[u8], u32)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&linktype.to_le_bytes());
    for (i, (d, wire)) in packets.iter().enumerate() {
        f.extend_from_slice(&(1000 + i as u32).to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes());
        f.extend_from_slice(&(d.len() as u32).to_le_bytes());
        f.extend_from_slice(&wire.to_le_bytes());
        f.extend_from_slice(d);
    }
    f
}

#[test]
fn classic_records_and_errors() {
    let f = classic_file(1, &[(&[1; 60], 60), (&[2; 20], 1500)]);
    let p = parse(&f, "c").expect("parse");
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].time_ns, 1000 * 1_000_000_000 + 5000);
    assert_eq!(p[1].wire_len, 1500);
    assert_eq!(p[1].data, Data::Ethernet(vec![2; 20]));
    // Cut anywhere inside the last record: refused with an offset.
    for cut in [f.len() - 1, f.len() - 20, f.len() - 30, 23] {
        let e = parse(&f[..cut], "c").expect_err("truncated");
        assert!(matches!(e, PcapError::Malformed { .. }), "{cut}: {e}");
    }
    assert!(matches!(
        parse(b"hello world, not a capture", "c"),
        Err(PcapError::BadMagic { .. })
    ));
    assert!(matches!(parse(b"", "c"), Err(PcapError::BadMagic { .. })));
    // caplen > wire length, caplen past every snapshot length.
    let mut bad = classic_file(1, &[(&[1; 60], 60)]);
    bad[24 + 12..24 + 16].copy_from_slice(&10u32.to_le_bytes());
    assert!(parse(&bad, "c").is_err());
    let mut huge = classic_file(1, &[(&[1; 60], 60)]);
    huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[24 + 12..24 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = parse(&huge, "c").expect_err("huge record");
    assert!(e.to_string().contains("snapshot length"), "{e}");
}

#[test]
fn cooked_captures_become_ethernet() {
    let mut sll = vec![
        0, 0, 0, 1, 0, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0, 0, 0x08, 0x00,
    ];
    sll.extend_from_slice(&[0x45; 20]);
    let f = classic_file(113, &[(&sll, sll.len() as u32)]);
    let p = parse(&f, "c").expect("parse");
    let Data::Ethernet(e) = &p[0].data else {
        panic!("{:?}", p[0].data)
    };
    assert_eq!(&e[6..14], &[0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00]);
    assert_eq!(e.len(), 34);
    assert_eq!(p[0].wire_len, 34);
    let mut out = sll.clone();
    out[1] = 4;
    let f = classic_file(113, &[(&out, out.len() as u32)]);
    assert_eq!(parse(&f, "c").expect("parse")[0].data, Data::Outgoing);
    let f = classic_file(101, &[(&[0x45; 20], 20)]);
    assert!(matches!(
        parse(&f, "c").expect("parse")[0].data,
        Data::NotEthernet(_)
    ));
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = 12 + body.len().div_ceil(4) * 4;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len - 4, 0);
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b
}

#[test]
fn pcapng_sections_interfaces_packets() {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut idb = vec![1, 0, 0, 0, 0, 0, 4, 0];
    // if_tsresol = 9 (nanoseconds)
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    let mut epb = Vec::new();
    for w in [0u32, 0, 1_000_000_007, 60, 60] {
        epb.extend_from_slice(&w.to_le_bytes());
    }
    epb.extend_from_slice(&[7; 60]);
    let mut f = block(NG_SHB, &shb);
    f.extend(block(NG_IDB, &idb));
    f.extend(block(NG_EPB, &epb));
    f.extend(block(0x8000_0001, &[1, 2, 3]));
    let p = parse(&f, "n").expect("parse");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].time_ns, 1_000_000_007);
    assert_eq!(p[0].data, Data::Ethernet(vec![7; 60]));
    for cut in [f.len() - 1, f.len() - 17, 30] {
        assert!(parse(&f[..cut], "n").is_err(), "{cut}");
    }
}
