// Checks the HEP encoders (src/trace/hep.rs) on any packet: v1, v2 and v3
// never panic, refuse only what the format cannot carry (over 65535 bytes,
// a capture id over 16 bits in v2), and what they write decodes, with the
// small decoders below (written from the layouts documented in hep.rs), back
// to the same addresses, ports, protocol, times, capture id, keys and
// payload. Mixed IPv4/IPv6 pairs come back as IPv4-mapped IPv6.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use siptraced::fuzz_api::hep_enc;
use siptraced::sip::Transport;
use siptraced::trace::hep::{HepError, HepPacket};

#[derive(Arbitrary, Debug)]
struct Input {
    src: (bool, u128, u16),
    dst: (bool, u128, u16),
    proto: u8,
    ts_sec: u32,
    ts_usec: u32,
    capture_id: u32,
    auth_key: Option<String>,
    correlation_id: Option<String>,
    proto_type: u8,
    payload: Vec<u8>,
}

fn addr((v6, bits, port): (bool, u128, u16)) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    };
    SocketAddr::new(ip, port)
}

/// Both ends in the one family the packet carries.
fn same_family(src: IpAddr, dst: IpAddr) -> (IpAddr, IpAddr) {
    let v6 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (src, dst),
        _ => (v6(src), v6(dst)),
    }
}

fn ip_of(family: u8, b: &[u8]) -> IpAddr {
    match family {
        2 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).expect("4-byte IPv4"))),
        10 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(b).expect("16-byte IPv6"),
        )),
        _ => panic!("family {family}"),
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes(b.try_into().expect("2 bytes"))
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Decoded {
    family: u8,
    ip_proto: u8,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    ts: Option<(u32, u32)>,
    capture_id: Option<u32>,
    proto_type: Option<u8>,
    auth_key: Option<Vec<u8>>,
    correlation_id: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// HEPv1/v2: version, length, family, proto, sport, dport, saddr, daddr,
/// then (v2) sec, usec, captid little-endian and 2 pad bytes, then payload.
fn decode_v12(version: u8, b: &[u8]) -> Decoded {
    assert_eq!(b[0], version);
    let family = b[2];
    let alen = if family == 2 { 4 } else { 16 };
    assert_eq!(usize::from(b[1]), 8 + 2 * alen, "header length byte");
    let sport = be16(&b[4..6]);
    let dport = be16(&b[6..8]);
    let src = ip_of(family, &b[8..8 + alen]);
    let dst = ip_of(family, &b[8 + alen..8 + 2 * alen]);
    let mut at = 8 + 2 * alen;
    let mut d = Decoded {
        family,
        ip_proto: b[3],
        src: Some(SocketAddr::new(src, sport)),
        dst: Some(SocketAddr::new(dst, dport)),
        ..Decoded::default()
    };
    if version == 2 {
        let t = &b[at..at + 12];
        d.ts = Some((le32(&t[0..4]), le32(&t[4..8])));
        d.capture_id = Some(u32::from(u16::from_le_bytes([t[8], t[9]])));
        assert_eq!(&t[10..12], &[0, 0], "v2 padding");
        at += 12;
    }
    d.payload = b[at..].to_vec();
    d
}

/// HEPv3: "HEP3", total length, then vendor/type/length chunks that must
/// tile the packet exactly.
fn decode_v3(b: &[u8]) -> Decoded {
    assert_eq!(&b[..4], b"HEP3");
    assert_eq!(usize::from(be16(&b[4..6])), b.len(), "total length");
    let mut d = Decoded::default();
    let (mut sip, mut dip, mut sport, mut dport) = (None, None, None, None);
    let (mut sec, mut usec) = (None, None);
    let mut at = 6;
    while at < b.len() {
        assert!(at + 6 <= b.len(), "truncated chunk header");
        assert_eq!(be16(&b[at..at + 2]), 0, "vendor");
        let ty = be16(&b[at + 2..at + 4]);
        let len = usize::from(be16(&b[at + 4..at + 6]));
        assert!(
            len >= 6 && at + len <= b.len(),
            "chunk {ty:#x} length {len}"
        );
        let v = &b[at + 6..at + len];
        match ty {
            1 => d.family = v[0],
            2 => d.ip_proto = v[0],
            3 | 5 => sip = Some(v.to_vec()),
            4 | 6 => dip = Some(v.to_vec()),
            7 => sport = Some(be16(v)),
            8 => dport = Some(be16(v)),
            9 => sec = Some(be32(v)),
            10 => usec = Some(be32(v)),
            11 => d.proto_type = Some(v[0]),
            12 => d.capture_id = Some(be32(v)),
            14 => d.auth_key = Some(v.to_vec()),
            15 => d.payload = v.to_vec(),
            17 => d.correlation_id = Some(v.to_vec()),
            _ => panic!("unexpected chunk {ty:#x}"),
        }
        at += len;
    }
    d.src = Some(SocketAddr::new(
        ip_of(d.family, &sip.expect("src")),
        sport.expect("sport"),
    ));
    d.dst = Some(SocketAddr::new(
        ip_of(d.family, &dip.expect("dst")),
        dport.expect("dport"),
    ));
    d.ts = Some((sec.expect("sec"), usec.expect("usec")));
    d
}

fuzz_target!(|data: &[u8]| {
    let Ok(inp) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let proto = [Transport::Udp, Transport::Tcp, Transport::Tls][usize::from(inp.proto % 3)];
    let p = HepPacket {
        src: addr(inp.src),
        dst: addr(inp.dst),
        proto,
        ts_sec: inp.ts_sec,
        ts_usec: inp.ts_usec,
        capture_id: inp.capture_id,
        auth_key: inp.auth_key.as_deref(),
        correlation_id: inp.correlation_id.as_deref(),
        payload: &inp.payload,
        proto_type: inp.proto_type,
    };
    let (sip, dip) = same_family(p.src.ip(), p.dst.ip());
    let family = if sip.is_ipv4() { 2 } else { 10 };
    let base = Decoded {
        family,
        ip_proto: hep_enc::ip_proto(proto),
        src: Some(SocketAddr::new(sip, p.src.port())),
        dst: Some(SocketAddr::new(dip, p.dst.port())),
        payload: inp.payload.clone(),
        ..Decoded::default()
    };
    let non_empty = |s: &Option<String>| {
        s.as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
    };

    match hep_enc::v3(&p) {
        Ok(b) => {
            let want = Decoded {
                ts: Some((p.ts_sec, p.ts_usec)),
                capture_id: Some(p.capture_id),
                proto_type: Some(p.proto_type),
                auth_key: non_empty(&inp.auth_key),
                correlation_id: non_empty(&inp.correlation_id),
                ..base.clone()
            };
            assert_eq!(decode_v3(&b), want, "v3 round trip");
        }
        Err(HepError::TooLarge { len }) => assert!(len > 65535),
        Err(e) => panic!("v3 refused: {e}"),
    }
    match hep_enc::v2(&p) {
        Ok(b) => {
            let want = Decoded {
                ts: Some((p.ts_sec, p.ts_usec)),
                capture_id: Some(p.capture_id),
                ..base.clone()
            };
            assert!(b.len() <= 65535);
            assert_eq!(decode_v12(2, &b), want, "v2 round trip");
        }
        Err(HepError::TooLarge { len }) => assert!(len > 65535),
        Err(HepError::CaptureIdTooWide { .. }) => assert!(p.capture_id > 65535),
    }
    match hep_enc::v1(&p) {
        Ok(b) => {
            assert!(b.len() <= 65535);
            assert_eq!(decode_v12(1, &b), base.clone(), "v1 round trip");
        }
        Err(HepError::TooLarge { len }) => assert!(len > 65535),
        Err(e) => panic!("v1 refused: {e}"),
    }
});
