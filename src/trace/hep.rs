//! HEP (Homer Encapsulation Protocol) encoders: turn one traced SIP message
//! and its addressing into the bytes of one HEPv3, HEPv2 or HEPv1 datagram,
//! laid out the way Kamailio's siptrace module sends them
//! (`src/modules/siptrace/siptrace_hep.c`) and Homer, sngrep and Kamailio's
//! sipcapture decode them.
//!
//! Pure: no sockets, no clock (the timestamp is a field of [`HepPacket`]), no
//! name resolution, no panics on any input. Depends on std and
//! sip::Transport only; the reactor sends the bytes and mirror.rs fills the
//! packet.

use crate::sip::Transport;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// HEP "protocol type" chunk value (0x000b) for SIP (HEP3 spec rev. 37).
pub(crate) const PROTO_TYPE_SIP: u8 = 0x01;

/// IANA protocol numbers, the value HEP carries as "IP protocol".
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Address family bytes as Kamailio writes them (`sa_family` on Linux,
/// `<bits/socket.h>`); every HEP receiver compares against these values.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// HEPv3 envelope: "HEP3" magic then a u16 total length (spec rev. 37 §3).
const HEP3_MAGIC: &[u8; 4] = b"HEP3";
const HEP3_HEADER_LEN: usize = 6;
/// Every chunk header: vendor u16, type u16, length u16 (length includes it).
const CHUNK_HEADER_LEN: usize = 6;
/// Vendor 0x0000 = the generic chunks defined by the spec.
const VENDOR_GENERIC: u16 = 0x0000;

/// Generic chunk type ids (HEP3 spec rev. 37, "Chunk types").
const CHUNK_IP_FAMILY: u16 = 0x0001;
const CHUNK_IP_PROTO: u16 = 0x0002;
const CHUNK_IPV4_SRC: u16 = 0x0003;
const CHUNK_IPV4_DST: u16 = 0x0004;
const CHUNK_IPV6_SRC: u16 = 0x0005;
const CHUNK_IPV6_DST: u16 = 0x0006;
const CHUNK_SRC_PORT: u16 = 0x0007;
const CHUNK_DST_PORT: u16 = 0x0008;
const CHUNK_TS_SEC: u16 = 0x0009;
const CHUNK_TS_USEC: u16 = 0x000a;
const CHUNK_PROTO_TYPE: u16 = 0x000b;
const CHUNK_CAPTURE_ID: u16 = 0x000c;
const CHUNK_AUTH_KEY: u16 = 0x000e;
const CHUNK_PAYLOAD: u16 = 0x000f;
const CHUNK_CORRELATION_ID: u16 = 0x0011;

/// HEPv1/v2 fixed header: version, length, family, proto (u8 each), then
/// source and destination port (u16 each) — `struct hep_hdr` in Kamailio's
/// `sipcapture/hep.h`.
const HEP12_HEADER_LEN: usize = 8;
/// HEPv2 time header: tv_sec u32, tv_usec u32, captid u16, padded by the C
/// compiler to the u32 alignment of `struct hep_timehdr` — 10 bytes of data
/// plus 2 zero bytes. Receivers skip `sizeof(struct hep_timehdr)` = 12.
const HEP2_TIME_HEADER_LEN: usize = 12;

/// Largest datagram we build: the HEPv3 length field is a u16, and Kamailio
/// refuses anything above its `BUF_SIZE` (65535) for v1/v2 too.
const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// The IP protocol number HEP carries: TLS runs over TCP.
/// (Kamailio writes 22, IPPROTO_IDP, as a "fake proto" for tls/ws/wss;
/// Homer and the HEP spec expect the real IP protocol, so we send 6.)
pub(crate) fn ip_proto(p: Transport) -> u8 {
    match p {
        Transport::Udp => IPPROTO_UDP,
        Transport::Tcp | Transport::Tls => IPPROTO_TCP,
    }
}

/// One message to encapsulate, with everything the header needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HepPacket<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub proto: Transport,
    /// Capture time, seconds since the Unix epoch (passed in: pure code).
    pub ts_sec: u32,
    /// Microseconds within `ts_sec`.
    pub ts_usec: u32,
    /// `hep_capture_id`; v2 has only 16 bits for it.
    pub capture_id: u32,
    /// `auth_key` modparam (chunk 0x000e, v3 only); empty means none.
    pub auth_key: Option<&'a str>,
    /// `sip_trace(uri, correlation_id)` (chunk 0x0011, v3 only); empty means none.
    pub correlation_id: Option<&'a str>,
    /// The SIP message bytes, exactly as stored in the `msg` column.
    pub payload: &'a [u8],
    /// Chunk 0x000b (v3 only); [`PROTO_TYPE_SIP`] for traced messages.
    pub proto_type: u8,
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    /// The encapsulated packet would exceed 65535 bytes.
    #[error(
        "HEP packet would be {len} bytes, over the 65535-byte limit; \
         the message is too large to duplicate over HEP"
    )]
    TooLarge { len: usize },
    /// HEPv2 carries the capture id in 16 bits.
    #[error(
        "hep_capture_id {capture_id} does not fit the 16-bit field of HEPv2; \
         use a value up to 65535 or set hep_version to 3"
    )]
    CaptureIdTooWide { capture_id: u32 },
}

/// Source and destination in one family. HEP has a single family field for
/// both ends and Kamailio refuses mixed pairs ("interworking detected ?",
/// kamailio#3665); we instead lift the IPv4 end to its IPv4-mapped IPv6 form
/// (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) so the message is still captured.
enum AddrPair {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl AddrPair {
    fn of(src: IpAddr, dst: IpAddr) -> AddrPair {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => AddrPair::V4(s.octets(), d.octets()),
            (s, d) => AddrPair::V6(as_v6(s).octets(), as_v6(d).octets()),
        }
    }

    fn family(&self) -> u8 {
        match self {
            AddrPair::V4(..) => AF_INET,
            AddrPair::V6(..) => AF_INET6,
        }
    }

    /// Bytes of one address.
    fn addr_len(&self) -> usize {
        match self {
            AddrPair::V4(..) => 4,
            AddrPair::V6(..) => 16,
        }
    }

    fn src(&self) -> &[u8] {
        match self {
            AddrPair::V4(s, _) => s,
            AddrPair::V6(s, _) => s,
        }
    }

    fn dst(&self) -> &[u8] {
        match self {
            AddrPair::V4(_, d) => d,
            AddrPair::V6(_, d) => d,
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// An optional string chunk is sent only when non-empty (Kamailio tests
/// `len > 0` for both the auth key and the correlation id).
fn non_empty(s: Option<&str>) -> Option<&[u8]> {
    s.filter(|s| !s.is_empty()).map(str::as_bytes)
}

/// HEPv3: "HEP3", u16 total length, then the chunks in the order
/// Kamailio's `trace_send_hep3_duplicate` packs them: family, IP proto,
/// src/dst address, src/dst port, seconds, microseconds, protocol type,
/// capture id, correlation id (if any), auth key (if any), payload. All
/// integers in network order.
pub(crate) fn encode_v3(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
    let addrs = AddrPair::of(p.src.ip(), p.dst.ip());
    let (src_chunk, dst_chunk) = match addrs {
        AddrPair::V4(..) => (CHUNK_IPV4_SRC, CHUNK_IPV4_DST),
        AddrPair::V6(..) => (CHUNK_IPV6_SRC, CHUNK_IPV6_DST),
    };
    let correlation_id = non_empty(p.correlation_id);
    let auth_key = non_empty(p.auth_key);

    // Family, IP proto, two addresses, two ports, seconds, microseconds,
    // protocol type, capture id, payload: the 11 chunks every packet has.
    let always = 11 * CHUNK_HEADER_LEN
        + (1 + 1 + 2 * addrs.addr_len() + 2 + 2 + 4 + 4 + 1 + 4)
        + p.payload.len();
    let optional: usize = [correlation_id, auth_key]
        .iter()
        .flatten()
        .map(|v| CHUNK_HEADER_LEN + v.len())
        .sum();
    let len = HEP3_HEADER_LEN + always + optional;
    if len > MAX_PACKET_LEN {
        return Err(HepError::TooLarge { len });
    }

    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(HEP3_MAGIC);
    push_u16(&mut buf, len);
    chunk(&mut buf, CHUNK_IP_FAMILY, &[addrs.family()]);
    chunk(&mut buf, CHUNK_IP_PROTO, &[ip_proto(p.proto)]);
    chunk(&mut buf, src_chunk, addrs.src());
    chunk(&mut buf, dst_chunk, addrs.dst());
    chunk(&mut buf, CHUNK_SRC_PORT, &p.src.port().to_be_bytes());
    chunk(&mut buf, CHUNK_DST_PORT, &p.dst.port().to_be_bytes());
    chunk(&mut buf, CHUNK_TS_SEC, &p.ts_sec.to_be_bytes());
    chunk(&mut buf, CHUNK_TS_USEC, &p.ts_usec.to_be_bytes());
    chunk(&mut buf, CHUNK_PROTO_TYPE, &[p.proto_type]);
    chunk(&mut buf, CHUNK_CAPTURE_ID, &p.capture_id.to_be_bytes());
    if let Some(cid) = correlation_id {
        chunk(&mut buf, CHUNK_CORRELATION_ID, cid);
    }
    if let Some(key) = auth_key {
        chunk(&mut buf, CHUNK_AUTH_KEY, key);
    }
    chunk(&mut buf, CHUNK_PAYLOAD, p.payload);
    debug_assert_eq!(buf.len(), len);
    Ok(buf)
}

/// HEPv2: the v1 header, then `tv_sec`, `tv_usec` (u32 each) and the capture
/// id (u16) in little-endian order plus 2 zero pad bytes, then the payload.
/// Kamailio writes the times with `to_le()` and the capture id in host order
/// (little-endian on x86 and ARM; we fix it to little-endian so the bytes do
/// not depend on where we run), and its sipcapture and sngrep read them back
/// that way, taking the payload after the 12-byte padded struct
/// (docs/decisions.md §8). `auth_key`, `correlation_id` and `proto_type` have no
/// place in v2 and are ignored.
pub(crate) fn encode_v2(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
    let capture_id = u16::try_from(p.capture_id).map_err(|_| HepError::CaptureIdTooWide {
        capture_id: p.capture_id,
    })?;
    let mut time = [0u8; HEP2_TIME_HEADER_LEN];
    time[0..4].copy_from_slice(&p.ts_sec.to_le_bytes());
    time[4..8].copy_from_slice(&p.ts_usec.to_le_bytes());
    time[8..10].copy_from_slice(&capture_id.to_le_bytes());
    encode_v12(2, p, &time)
}

/// HEPv1: version, header length, family, IP proto, source and destination
/// port (network order), source and destination address, then the payload.
/// No timestamp: the receiver stamps the arrival time.
pub(crate) fn encode_v1(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
    encode_v12(1, p, &[])
}

/// Shared v1/v2 layout. The length byte is what Kamailio's siptrace puts
/// there: the v1 header plus both addresses (16 for IPv4, 40 for IPv6), the
/// time header of v2 not included. No receiver we know relies on it
/// (sipcapture and heplify-server compute offsets from the family).
/// Ports are in network order, as every receiver reads them; Kamailio's
/// double `htons` of an already swapped port is a bug we do not copy.
fn encode_v12(version: u8, p: &HepPacket<'_>, time: &[u8]) -> Result<Vec<u8>, HepError> {
    let addrs = AddrPair::of(p.src.ip(), p.dst.ip());
    let header_len = HEP12_HEADER_LEN + 2 * addrs.addr_len();
    let len = (header_len + time.len()).saturating_add(p.payload.len());
    if len > MAX_PACKET_LEN {
        return Err(HepError::TooLarge { len });
    }
    let mut buf = Vec::with_capacity(len);
    buf.push(version);
    // At most 8 + 2*16 = 40: always fits the byte.
    buf.push(header_len as u8);
    buf.push(addrs.family());
    buf.push(ip_proto(p.proto));
    buf.extend_from_slice(&p.src.port().to_be_bytes());
    buf.extend_from_slice(&p.dst.port().to_be_bytes());
    buf.extend_from_slice(addrs.src());
    buf.extend_from_slice(addrs.dst());
    buf.extend_from_slice(time);
    buf.extend_from_slice(p.payload);
    debug_assert_eq!(buf.len(), len);
    Ok(buf)
}

/// Append one generic chunk; callers checked the total against 65535 first,
/// so every length fits its u16.
fn chunk(buf: &mut Vec<u8>, type_id: u16, value: &[u8]) {
    buf.extend_from_slice(&VENDOR_GENERIC.to_be_bytes());
    buf.extend_from_slice(&type_id.to_be_bytes());
    push_u16(buf, CHUNK_HEADER_LEN + value.len());
    buf.extend_from_slice(value);
}

fn push_u16(buf: &mut Vec<u8>, n: usize) {
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    buf.extend_from_slice(&n.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV6};

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(a), port))
    }

    fn v6(s: &str, port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(s.parse().unwrap(), port, 0, 0))
    }

    /// 10.0.0.1:5060 -> 10.0.0.2:5080 over UDP, 1700000000.123456,
    /// capture id 2001, payload "SIP".
    fn base() -> HepPacket<'static> {
        HepPacket {
            src: v4([10, 0, 0, 1], 5060),
            dst: v4([10, 0, 0, 2], 5080),
            proto: Transport::Udp,
            ts_sec: 1_700_000_000, // 0x6553f100
            ts_usec: 123_456,      // 0x0001e240
            capture_id: 2001,      // 0x07d1
            auth_key: None,
            correlation_id: None,
            payload: b"SIP",
            proto_type: PROTO_TYPE_SIP,
        }
    }

    /// Minimal HEPv3 walker: checks the envelope and that chunk lengths add
    /// up exactly to the total, and returns (type, value) in wire order.
    fn decode_v3(buf: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&buf[..4], b"HEP3");
        let total = u16::from_be_bytes([buf[4], buf[5]]) as usize;
        assert_eq!(total, buf.len(), "total length field");
        let mut chunks = Vec::new();
        let mut pos = 6;
        while pos < total {
            assert!(pos + 6 <= total, "truncated chunk header at {pos}");
            let vendor = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
            let ty = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]);
            let len = u16::from_be_bytes([buf[pos + 4], buf[pos + 5]]) as usize;
            assert_eq!(vendor, 0, "generic vendor");
            assert!(len >= 6 && pos + len <= total, "chunk {ty:#x} length {len}");
            chunks.push((ty, buf[pos + 6..pos + len].to_vec()));
            pos += len;
        }
        assert_eq!(pos, total, "chunks must end exactly at the total length");
        chunks
    }

    fn types(chunks: &[(u16, Vec<u8>)]) -> Vec<u16> {
        chunks.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn v3_ipv4() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            b'H', b'E', b'P', b'3', 0x00, 0x66,            // magic, total 102
            0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02,      // family AF_INET
            0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x11,      // IP proto 17 (UDP)
            0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 10, 0, 0, 1, // IPv4 src
            0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 10, 0, 0, 2, // IPv4 dst
            0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x13, 0xc4, // src port 5060
            0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xd8, // dst port 5080
            0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x65, 0x53, 0xf1, 0x00, // seconds
            0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xe2, 0x40, // microseconds
            0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01,      // proto type SIP
            0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x07, 0xd1, // capture id 2001
            0x00, 0x00, 0x00, 0x0f, 0x00, 0x09, b'S', b'I', b'P', // payload
        ];
        let got = encode_v3(&base()).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            types(&decode_v3(&got)),
            [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 15]
        );
    }

    #[test]
    fn v3_ipv6() {
        let p = HepPacket {
            src: v6("2001:db8::1", 5060),
            dst: v6("2001:db8::2", 5080),
            proto: Transport::Tcp,
            ..base()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            b'H', b'E', b'P', b'3', 0x00, 0x7e,            // magic, total 126
            0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x0a,      // family AF_INET6 (10)
            0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x06,      // IP proto 6 (TCP)
            0x00, 0x00, 0x00, 0x05, 0x00, 0x16,            // IPv6 src, 6 + 16
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0x00, 0x00, 0x00, 0x06, 0x00, 0x16,            // IPv6 dst
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
            0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x13, 0xc4, // src port 5060
            0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xd8, // dst port 5080
            0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x65, 0x53, 0xf1, 0x00, // seconds
            0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xe2, 0x40, // microseconds
            0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01,      // proto type SIP
            0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x07, 0xd1, // capture id
            0x00, 0x00, 0x00, 0x0f, 0x00, 0x09, b'S', b'I', b'P', // payload
        ];
        let got = encode_v3(&p).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            types(&decode_v3(&got)),
            [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 15]
        );
    }

    #[test]
    fn v3_auth_key_and_correlation_id() {
        let p = HepPacket {
            auth_key: Some("key"),
            correlation_id: Some("cid1"),
            ..base()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            b'H', b'E', b'P', b'3', 0x00, 0x79,            // magic, total 121 = 102 + 10 + 9
            0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02,      // family
            0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x11,      // IP proto
            0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 10, 0, 0, 1, // IPv4 src
            0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 10, 0, 0, 2, // IPv4 dst
            0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x13, 0xc4, // src port
            0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xd8, // dst port
            0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x65, 0x53, 0xf1, 0x00, // seconds
            0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xe2, 0x40, // microseconds
            0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01,      // proto type
            0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x07, 0xd1, // capture id
            0x00, 0x00, 0x00, 0x11, 0x00, 0x0a, b'c', b'i', b'd', b'1', // correlation id
            0x00, 0x00, 0x00, 0x0e, 0x00, 0x09, b'k', b'e', b'y', // auth key
            0x00, 0x00, 0x00, 0x0f, 0x00, 0x09, b'S', b'I', b'P', // payload
        ];
        let got = encode_v3(&p).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            types(&decode_v3(&got)),
            [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 0x11, 0x0e, 15]
        );
    }

    #[test]
    fn v3_empty_optional_strings_are_omitted() {
        let p = HepPacket {
            auth_key: Some(""),
            correlation_id: Some(""),
            ..base()
        };
        assert_eq!(encode_v3(&p).unwrap(), encode_v3(&base()).unwrap());
    }

    #[test]
    fn v3_mixed_families_use_ipv4_mapped_ipv6() {
        let p = HepPacket {
            src: v4([192, 0, 2, 7], 5060),
            dst: v6("2001:db8::2", 5060),
            ..base()
        };
        let chunks = decode_v3(&encode_v3(&p).unwrap());
        assert_eq!(chunks[0], (CHUNK_IP_FAMILY, vec![AF_INET6]));
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7];
        assert_eq!(chunks[2], (CHUNK_IPV6_SRC, mapped.to_vec()));
        assert_eq!(chunks[3].0, CHUNK_IPV6_DST);
    }

    #[test]
    fn v3_fields_round_trip_through_the_walker() {
        let payload = vec![b'x'; 1000];
        let p = HepPacket {
            src: v4([127, 0, 0, 1], 65535),
            dst: v4([255, 255, 255, 255], 1),
            proto: Transport::Tls,
            ts_sec: u32::MAX,
            ts_usec: 999_999,
            capture_id: u32::MAX,
            auth_key: Some("secret"),
            correlation_id: Some("call-id@host"),
            payload: &payload,
            proto_type: 0x64,
        };
        let chunks = decode_v3(&encode_v3(&p).unwrap());
        let get = |t: u16| chunks.iter().find(|(ty, _)| *ty == t).unwrap().1.clone();
        assert_eq!(get(CHUNK_IP_PROTO), [6]);
        assert_eq!(get(CHUNK_SRC_PORT), 65535u16.to_be_bytes());
        assert_eq!(get(CHUNK_DST_PORT), 1u16.to_be_bytes());
        assert_eq!(get(CHUNK_TS_SEC), u32::MAX.to_be_bytes());
        assert_eq!(get(CHUNK_TS_USEC), 999_999u32.to_be_bytes());
        assert_eq!(get(CHUNK_CAPTURE_ID), u32::MAX.to_be_bytes());
        assert_eq!(get(CHUNK_PROTO_TYPE), [0x64]);
        assert_eq!(get(CHUNK_AUTH_KEY), b"secret");
        assert_eq!(get(CHUNK_CORRELATION_ID), b"call-id@host");
        assert_eq!(get(CHUNK_PAYLOAD), payload);
    }

    #[test]
    fn size_limit() {
        type Encoder = fn(&HepPacket<'_>) -> Result<Vec<u8>, HepError>;
        // Bytes before/around the payload for the IPv4 base packet:
        // v3 102 - 3 = 99, v2 28, v1 16.
        let cases: [(&str, Encoder, usize); 3] = [
            ("v3", encode_v3, 99),
            ("v2", encode_v2, 28),
            ("v1", encode_v1, 16),
        ];
        for (name, encode, overhead) in cases {
            let max = vec![0u8; 65535 - overhead];
            let got = encode(&HepPacket {
                payload: &max,
                ..base()
            });
            assert_eq!(got.map(|b| b.len()), Ok(65535), "{name} at the limit");
            let over = vec![0u8; 65536 - overhead];
            let got = encode(&HepPacket {
                payload: &over,
                ..base()
            });
            assert_eq!(got, Err(HepError::TooLarge { len: 65536 }), "{name} over");
        }
        let max = vec![0u8; 65535 - 99];
        decode_v3(
            &encode_v3(&HepPacket {
                payload: &max,
                ..base()
            })
            .unwrap(),
        );
    }

    #[test]
    fn v2_ipv4() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x02,                   // version 2
            0x10,                   // header length 16 = 8 + 4 + 4
            0x02,                   // AF_INET
            0x11,                   // UDP
            0x13, 0xc4,             // src port 5060, network order
            0x13, 0xd8,             // dst port 5080, network order
            10, 0, 0, 1,            // src address
            10, 0, 0, 2,            // dst address
            0x00, 0xf1, 0x53, 0x65, // tv_sec 0x6553f100, little-endian
            0x40, 0xe2, 0x01, 0x00, // tv_usec 0x0001e240, little-endian
            0xd1, 0x07,             // capture id 2001, little-endian
            0x00, 0x00,             // struct padding
            b'S', b'I', b'P',       // payload
        ];
        assert_eq!(encode_v2(&base()).unwrap(), expected);
    }

    #[test]
    fn v2_ipv6() {
        let p = HepPacket {
            src: v6("2001:db8::1", 5060),
            dst: v6("2001:db8::2", 5080),
            proto: Transport::Tls,
            ..base()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x02,                   // version 2
            0x28,                   // header length 40 = 8 + 16 + 16
            0x0a,                   // AF_INET6
            0x06,                   // TLS runs over TCP
            0x13, 0xc4,             // src port
            0x13, 0xd8,             // dst port
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
            0x00, 0xf1, 0x53, 0x65, // tv_sec
            0x40, 0xe2, 0x01, 0x00, // tv_usec
            0xd1, 0x07,             // capture id
            0x00, 0x00,             // padding
            b'S', b'I', b'P',       // payload
        ];
        assert_eq!(encode_v2(&p).unwrap(), expected);
    }

    #[test]
    fn v2_capture_id_must_fit_16_bits() {
        let ok = HepPacket {
            capture_id: 65535,
            ..base()
        };
        assert_eq!(&encode_v2(&ok).unwrap()[24..26], [0xff, 0xff]);
        let wide = HepPacket {
            capture_id: 65536,
            ..base()
        };
        assert_eq!(
            encode_v2(&wide),
            Err(HepError::CaptureIdTooWide { capture_id: 65536 })
        );
    }

    #[test]
    fn v1_ipv4() {
        // Auth key, correlation id and time have no place in v1.
        let p = HepPacket {
            auth_key: Some("key"),
            correlation_id: Some("cid"),
            ..base()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x01,             // version 1
            0x10,             // header length 16
            0x02,             // AF_INET
            0x11,             // UDP
            0x13, 0xc4,       // src port 5060
            0x13, 0xd8,       // dst port 5080
            10, 0, 0, 1,      // src address
            10, 0, 0, 2,      // dst address
            b'S', b'I', b'P', // payload
        ];
        assert_eq!(encode_v1(&p).unwrap(), expected);
    }

    #[test]
    fn v1_mixed_families_use_ipv6() {
        let p = HepPacket {
            src: v6("::1", 5060),
            dst: v4([10, 0, 0, 2], 5080),
            ..base()
        };
        let got = encode_v1(&p).unwrap();
        assert_eq!(&got[..4], [0x01, 0x28, 0x0a, 0x11]);
        assert_eq!(
            &got[24..40],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2]
        );
        assert_eq!(&got[40..], b"SIP");
    }

    #[test]
    fn transport_to_ip_proto() {
        let cases = [
            (Transport::Udp, 17),
            (Transport::Tcp, 6),
            (Transport::Tls, 6),
        ];
        for (t, want) in cases {
            assert_eq!(ip_proto(t), want, "{t:?}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let msg = HepError::CaptureIdTooWide { capture_id: 70000 }.to_string();
        assert!(
            msg.contains("70000") && msg.contains("hep_version"),
            "{msg}"
        );
        let msg = HepError::TooLarge { len: 70000 }.to_string();
        assert!(msg.contains("70000") && msg.contains("65535"), "{msg}");
    }
}
