//! Stored messages as a capture file: each message becomes one Ethernet
//! frame with synthesised IPv4/IPv6 and UDP or TCP headers built from the
//! row's `fromip`/`toip`, stamped with the row's time, and written as
//! classic pcap (microsecond timestamps) or pcapng.
//!
//! The payload is the `msg` column exactly. TCP, TLS and WebSocket rows
//! become TCP segments (TLS as its plaintext, which is what was traced)
//! with running sequence and acknowledgement numbers per direction, so
//! that Wireshark follows each connection as one stream; SCTP rows, which
//! have no simple framing here, go as UDP. Every checksum (IPv4 header,
//! UDP, TCP) is computed, so tshark's checks pass when enabled.
//!
//! Written by hand rather than with the `pcap-file` crate: the two formats
//! need ~100 lines, and the crate would add a dependency tree for it.
//! Pure: packets in, bytes out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A call's rows as capture bytes: one packet per drawn message (copies of
/// one event collapsed, as in the ladder; retransmissions kept, they were
/// on the wire twice). Also returns the address values that are not
/// `proto:ip:port` (written as 0.0.0.0:5060), for the caller to report.
pub fn capture(rows: &[super::StoredRow], ng: bool) -> (Vec<u8>, Vec<String>) {
    let l = super::ladder::build(rows);
    let mut unknown: Vec<String> = Vec::new();
    let mut ep = |v: &str| {
        endpoint(v).unwrap_or_else(|| {
            if !unknown.iter().any(|u| u == v) {
                unknown.push(v.to_string());
            }
            (Proto::Udp, SocketAddr::from(([0, 0, 0, 0], 5060)))
        })
    };
    let packets: Vec<Packet> = l
        .arrows
        .iter()
        .map(|a| {
            let r = &rows[a.rows[0]];
            let (proto, src) = ep(&r.fromip);
            let (_, dst) = ep(&r.toip);
            Packet {
                sec: r.sec,
                usec: r.us.unwrap_or(0),
                proto,
                src,
                dst,
                payload: r.msg.clone(),
            }
        })
        .collect();
    let f = frames(&packets);
    (if ng { pcapng(&f) } else { pcap(&f) }, unknown)
}

/// How the message travels in the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

/// One message to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub sec: i64,
    pub usec: u32,
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// A `proto:ip:port` column value (`udp:[::1]:5060`, Kamailio's bare
/// `udp:::1:5060`, `any:255.255.255.255:5060`) as transport and address;
/// `None` for what is not one (a `trace_local_ip` host name).
pub fn endpoint(v: &str) -> Option<(Proto, SocketAddr)> {
    let (proto, rest) = v.split_once(':')?;
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "tls" | "ws" | "wss" => Proto::Tcp,
        _ => Proto::Udp,
    };
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    Some((proto, SocketAddr::new(ip, port)))
}

/// Largest payload per IP packet: 65535 minus the largest headers.
const MAX_SEGMENT: usize = 65_535 - 60 - 60;
const ETH_V4: u16 = 0x0800;
const ETH_V6: u16 = 0x86dd;
/// A locally administered MAC per side, so the two ends differ.
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// One frame with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sec: i64,
    pub usec: u32,
    pub data: Vec<u8>,
}

/// The frames of the packets, in order; a message longer than one IP
/// packet is cut into several segments (TCP) or datagram-sized pieces.
pub fn frames(packets: &[Packet]) -> Vec<Frame> {
    // Next sequence number per direction of a TCP connection.
    let mut seq: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut out = Vec::new();
    for p in packets {
        let (src, dst) = same_family(p.src, p.dst);
        let pieces: Vec<&[u8]> = if p.payload.is_empty() {
            vec![&[][..]]
        } else {
            p.payload.chunks(MAX_SEGMENT).collect()
        };
        for piece in pieces {
            let l4 = match p.proto {
                Proto::Udp => udp(src, dst, piece),
                Proto::Tcp => {
                    // Sequence numbers start at 1 in each direction, as
                    // if after a handshake with ISN 0.
                    let ack = *seq.get(&(dst, src)).unwrap_or(&1);
                    let s = seq.entry((src, dst)).or_insert(1);
                    let seg = tcp(src, dst, *s, ack, piece);
                    *s = s.wrapping_add(piece.len() as u32);
                    seg
                }
            };
            let proto_no = if p.proto == Proto::Udp { 17 } else { 6 };
            let mut data = Vec::with_capacity(14 + 40 + l4.len());
            data.extend_from_slice(&MAC_DST);
            data.extend_from_slice(&MAC_SRC);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    data.extend_from_slice(&ETH_V4.to_be_bytes());
                    let total = (20 + l4.len()) as u16;
                    let mut h = [0u8; 20];
                    h[0] = 0x45;
                    h[2..4].copy_from_slice(&total.to_be_bytes());
                    h[6] = 0x40; // don't fragment
                    h[8] = 64;
                    h[9] = proto_no;
                    h[12..16].copy_from_slice(&a.octets());
                    h[16..20].copy_from_slice(&b.octets());
                    let c = checksum(&[&h]);
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                    data.extend_from_slice(&h);
                }
                (a, b) => {
                    data.extend_from_slice(&ETH_V6.to_be_bytes());
                    let mut h = [0u8; 40];
                    h[0] = 0x60;
                    h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                    h[6] = proto_no;
                    h[7] = 64;
                    h[8..24].copy_from_slice(&v6(a).octets());
                    h[24..40].copy_from_slice(&v6(b).octets());
                    data.extend_from_slice(&h);
                }
            }
            data.extend_from_slice(&l4);
            out.push(Frame {
                sec: p.sec,
                usec: p.usec,
                data,
            });
        }
    }
    out
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// An IPv4 end facing an IPv6 one becomes IPv4-mapped: one IP header
/// carries one family.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    (
        SocketAddr::new(IpAddr::V6(v6(a.ip())), a.port()),
        SocketAddr::new(IpAddr::V6(v6(b.ip())), b.port()),
    )
}

/// The RFC 1071 checksum over several byte slices read as one.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: SocketAddr, dst: SocketAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            p.extend_from_slice(&a.octets());
            p.extend_from_slice(&b.octets());
            p.push(0);
            p.push(proto);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (a, b) => {
            p.extend_from_slice(&v6(a).octets());
            p.extend_from_slice(&v6(b).octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    p
}

fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&src.port().to_be_bytes());
    h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    let ph = pseudo_header(src, dst, 17, len);
    let mut c = checksum(&[&ph, &h, payload]);
    // 0 means "no checksum" in UDP: a computed 0 is sent as all ones.
    if c == 0 {
        c = 0xffff;
    }
    h[6..8].copy_from_slice(&c.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(payload);
    out
}

fn tcp(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&src.port().to_be_bytes());
    h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x18; // PSH, ACK
    h[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    let ph = pseudo_header(src, dst, 6, 20 + payload.len());
    let c = checksum(&[&ph, &h, payload]);
    h[16..18].copy_from_slice(&c.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(payload);
    out
}

/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u16 = 1;
const SNAPLEN: u32 = 262_144;

/// Classic pcap, little-endian, microsecond timestamps.
pub fn pcap(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
    for f in frames {
        out.extend_from_slice(&(f.sec as u32).to_le_bytes());
        out.extend_from_slice(&f.usec.to_le_bytes());
        let n = f.data.len() as u32;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&f.data);
    }
    out
}

/// pcapng: one section, one Ethernet interface (default microsecond
/// resolution), one Enhanced Packet Block per frame.
pub fn pcapng(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&SNAPLEN.to_le_bytes());
    block(&mut out, 1, &idb);
    for f in frames {
        let ts = (f.sec as u64)
            .wrapping_mul(1_000_000)
            .wrapping_add(u64::from(f.usec));
        let mut epb = Vec::with_capacity(20 + f.data.len());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        let n = f.data.len() as u32;
        epb.extend_from_slice(&n.to_le_bytes());
        epb.extend_from_slice(&n.to_le_bytes());
        epb.extend_from_slice(&f.data);
        block(&mut out, 6, &epb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn endpoints_in_every_spelling() {
        assert_eq!(
            endpoint("udp:10.0.0.1:5060"),
            Some((Proto::Udp, sa("10.0.0.1:5060")))
        );
        assert_eq!(
            endpoint("tls:[::1]:5061"),
            Some((Proto::Tcp, sa("[::1]:5061")))
        );
        assert_eq!(
            endpoint("udp:::1:5060"),
            Some((Proto::Udp, sa("[::1]:5060")))
        );
        assert_eq!(
            endpoint("any:255.255.255.255:5060"),
            Some((Proto::Udp, sa("255.255.255.255:5060")))
        );
        assert_eq!(endpoint("udp:proxy.example.com"), None);
        assert_eq!(endpoint("garbage"), None);
    }

    #[test]
    fn checksums_verify_to_zero() {
        // A correct checksum makes the sum over header + data all ones.
        let seg = udp(sa("10.0.0.1:5060"), sa("10.0.0.2:5070"), b"abc");
        let ph = pseudo_header(sa("10.0.0.1:5060"), sa("10.0.0.2:5070"), 17, seg.len());
        assert_eq!(checksum(&[&ph, &seg]), 0);
        let seg = tcp(sa("[::1]:5060"), sa("[::2]:5070"), 7, 9, b"hello");
        let ph = pseudo_header(sa("[::1]:5060"), sa("[::2]:5070"), 6, seg.len());
        assert_eq!(checksum(&[&ph, &seg]), 0);
        let f = frames(&[Packet {
            sec: 1,
            usec: 2,
            proto: Proto::Udp,
            src: sa("10.0.0.1:1"),
            dst: sa("10.0.0.2:2"),
            payload: b"x".to_vec(),
        }]);
        assert_eq!(checksum(&[&f[0].data[14..34]]), 0);
    }

    #[test]
    fn tcp_sequence_runs_per_direction() {
        let (a, b) = (sa("10.0.0.1:5060"), sa("10.0.0.2:5060"));
        let mk = |src, dst, n: usize| Packet {
            sec: 0,
            usec: 0,
            proto: Proto::Tcp,
            src,
            dst,
            payload: vec![b'x'; n],
        };
        let f = frames(&[mk(a, b, 10), mk(b, a, 5), mk(a, b, 3)]);
        let seq_ack = |fr: &Frame| {
            let t = &fr.data[34..];
            (
                u32::from_be_bytes(t[4..8].try_into().unwrap()),
                u32::from_be_bytes(t[8..12].try_into().unwrap()),
            )
        };
        assert_eq!(seq_ack(&f[0]), (1, 1));
        assert_eq!(seq_ack(&f[1]), (1, 11));
        assert_eq!(seq_ack(&f[2]), (11, 6));
    }

    #[test]
    fn file_headers() {
        let f = vec![Frame {
            sec: 1_700_000_000,
            usec: 123_456,
            data: vec![1, 2, 3],
        }];
        let p = pcap(&f);
        assert_eq!(&p[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(p.len(), 24 + 16 + 3);
        let g = pcapng(&f);
        assert_eq!(&g[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert_eq!(g.len() % 4, 0);
        // SHB 28 + IDB 20 + EPB 32 + 3 data + 1 pad.
        assert_eq!(g.len(), 28 + 20 + 36);
    }
}
