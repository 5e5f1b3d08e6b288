//! The spool's on-disk format, as pure functions over byte slices: segment
//! header, record framing (length-prefixed, CRC-32 checked), the row codec,
//! and the scanner that finds where good records end and damage begins.
//!
//! No I/O and no clock: the file layer (`super::segment`) reads bytes and
//! hands them here. Everything here is unit-tested with hand-made buffers.
//!
//! Layout (all integers little-endian):
//! ```text
//! segment  = header record*
//! header   = "siptraced-spool" version:u8            (16 bytes)
//! record   = magic:[0xFB 0xD5] len:u32 crc:u32 payload[len]
//!            crc = CRC-32 (IEEE, as zlib) of the 4 len bytes ++ payload
//! payload  = seq:u64 time_sec:i64 time_us:u32 direction:u8 flags:u8
//!            [table] msg callid method status fromip toip time_stamp
//!            fromtag totag traced_user         (each u32 length + bytes;
//!                                               table only if flags bit 0)
//! ```
//! The CRC covers the length too, so a corrupted length is caught rather
//! than making the reader skip to a wrong place. The magic makes resync
//! after a damaged record cheap: only offsets starting with those two bytes
//! (never both present in SIP text, 0xFB is not valid UTF-8) are tried.

use crate::db::Row;
use std::ops::Range;

/// First bytes of every segment file; the last byte is the format version.
pub(crate) const SEGMENT_MAGIC: &[u8; 16] = b"siptraced-spool\x01";
/// Bytes of the segment header.
pub(crate) const HEADER_LEN: usize = SEGMENT_MAGIC.len();
/// First two bytes of every record.
pub(crate) const RECORD_MAGIC: [u8; 2] = [0xFB, 0xD5];
/// magic + len + crc.
pub(crate) const FRAME_OVERHEAD: usize = 10;
/// Largest payload accepted when reading: a row holds at most one datagram
/// (64 KiB) plus short fields; 16 MiB leaves room for any future TCP message
/// while still rejecting a garbage length before allocating it.
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;
/// seq + time_sec + time_us + direction + flags.
const FIXED_LEN: usize = 8 + 8 + 4 + 1 + 1;

/// CRC-32 (IEEE 802.3, the zlib/PNG polynomial). The `crc32fast` crate is
/// used rather than a hand-written table because it is already in the build
/// (flate2 under the mysql driver pulls it in) and uses the CPU's carry-less
/// multiply: scanning a 256 MiB spool at start-up costs well under a second.
fn crc(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Append one record (frame + payload) for `row` with sequence number `seq`.
pub(crate) fn encode(seq: u64, row: &Row, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&[0; 8]); // len + crc, filled in below
    let body = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&row.time_sec.to_le_bytes());
    out.extend_from_slice(&row.time_us.to_le_bytes());
    out.push(u8::from(row.direction == "out"));
    out.push(u8::from(row.table.is_some()));
    let mut field = |b: &[u8]| {
        // A row field is far below 4 GiB (one datagram at most).
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    if let Some(t) = &row.table {
        field(t.as_bytes());
    }
    for b in [
        &row.msg[..],
        row.callid.as_bytes(),
        row.method.as_bytes(),
        row.status.as_bytes(),
        row.fromip.as_bytes(),
        row.toip.as_bytes(),
        row.time_stamp.as_bytes(),
        row.fromtag.as_bytes(),
        row.totag.as_bytes(),
        row.traced_user.as_bytes(),
    ] {
        field(b);
    }
    let len = ((out.len() - body) as u32).to_le_bytes();
    let sum = crc(&len, &out[body..]);
    out[start + 2..start + 6].copy_from_slice(&len);
    out[start + 6..start + 10].copy_from_slice(&sum.to_le_bytes());
}

/// Bytes [`encode`] will append for `row` (for the size cap, before
/// encoding).
pub(crate) fn encoded_len(row: &Row) -> usize {
    let fields = [
        row.table.as_ref().map_or(0, |t| 4 + t.len()),
        row.msg.len(),
        row.callid.len(),
        row.method.len(),
        row.status.len(),
        row.fromip.len(),
        row.toip.len(),
        row.time_stamp.len(),
        row.fromtag.len(),
        row.totag.len(),
        row.traced_user.len(),
    ];
    FRAME_OVERHEAD + FIXED_LEN + 10 * 4 + fields.iter().sum::<usize>()
}

/// Why bytes are not a good record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The buffer ends inside a record (a write cut short by a crash).
    Incomplete,
    /// The record does not start with the record magic.
    BadMagic,
    /// The length is larger than any record we write.
    BadLength,
    /// The checksum does not match: the bytes changed after writing.
    BadChecksum,
    /// The checksum matches but the payload does not decode (or its sequence
    /// number is not above the previous record's).
    BadPayload,
}

impl Flaw {
    pub fn as_str(self) -> &'static str {
        match self {
            Flaw::Incomplete => "record cut short",
            Flaw::BadMagic => "no record marker",
            Flaw::BadLength => "impossible record length",
            Flaw::BadChecksum => "checksum mismatch",
            Flaw::BadPayload => "undecodable record",
        }
    }
}

/// One good record found by [`scan`]: where its payload is and its sequence
/// number (decoding the row is left to when it is replayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    /// Whole record, frame included (offsets into the scanned buffer).
    pub span: Range<usize>,
    /// Payload only.
    pub payload: Range<usize>,
}

/// Bytes skipped by [`scan`] because they hold no good record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub span: Range<usize>,
    /// What was wrong at the start of the span.
    pub flaw: Flaw,
}

/// What [`scan`] found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    pub frames: Vec<Frame>,
    /// Damaged spans followed by good records (skipped, reported).
    pub skipped: Vec<Damage>,
    /// Damage running to the end of the buffer: a torn or corrupt tail, to
    /// be cut off. `None` when the buffer ends right after a good record.
    pub tail: Option<Damage>,
}

impl Scan {
    /// Offset just past the last good record (where a torn tail starts).
    pub(crate) fn good_end(&self, start: usize) -> usize {
        self.frames.last().map_or(start, |f| f.span.end)
    }
}

/// Check one record at the start of `buf`.
fn frame_at(buf: &[u8]) -> Result<(usize, u64), Flaw> {
    if buf.len() < FRAME_OVERHEAD {
        // A short buffer that could begin a frame is a torn write.
        let n = buf.len().min(2);
        return Err(if buf[..n] == RECORD_MAGIC[..n] {
            Flaw::Incomplete
        } else {
            Flaw::BadMagic
        });
    }
    if buf[..2] != RECORD_MAGIC {
        return Err(Flaw::BadMagic);
    }
    let len_bytes: [u8; 4] = [buf[2], buf[3], buf[4], buf[5]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if !(FIXED_LEN..=MAX_PAYLOAD).contains(&len) {
        return Err(Flaw::BadLength);
    }
    let Some(payload) = buf.get(FRAME_OVERHEAD..FRAME_OVERHEAD + len) else {
        return Err(Flaw::Incomplete);
    };
    let want = u32::from_le_bytes([buf[6], buf[7], buf[8], buf[9]]);
    if crc(&len_bytes, payload) != want {
        return Err(Flaw::BadChecksum);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&payload[..8]);
    Ok((FRAME_OVERHEAD + len, u64::from_le_bytes(seq)))
}

/// Find every good record in `buf[start..]`, in order. Sequence numbers must
/// rise strictly, starting above `after_seq`; a record that breaks this is
/// damage too. After damage, the scan resumes at the next offset where a
/// whole good record starts (so one flipped bit costs one record, not the
/// rest of the file); damage with no good record after it is the tail.
pub(crate) fn scan(buf: &[u8], start: usize, after_seq: u64) -> Scan {
    let mut out = Scan::default();
    let mut last_seq = after_seq;
    let mut at = start;
    while at < buf.len() {
        match frame_at(&buf[at..]) {
            Ok((n, seq)) if seq > last_seq => {
                out.frames.push(Frame {
                    seq,
                    span: at..at + n,
                    payload: at + FRAME_OVERHEAD..at + n,
                });
                last_seq = seq;
                at += n;
            }
            r => {
                let flaw = match r {
                    Ok(_) => Flaw::BadPayload,
                    Err(f) => f,
                };
                match resync(buf, at + 1, last_seq) {
                    Some(next) => {
                        out.skipped.push(Damage {
                            span: at..next,
                            flaw,
                        });
                        at = next;
                    }
                    None => {
                        out.tail = Some(Damage {
                            span: at..buf.len(),
                            flaw,
                        });
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// The next offset at or after `from` where a good record with a sequence
/// number above `last_seq` starts.
fn resync(buf: &[u8], from: usize, last_seq: u64) -> Option<usize> {
    let mut at = from;
    while at + FRAME_OVERHEAD <= buf.len() {
        let rel = buf[at..]
            .windows(2)
            .position(|w| w == RECORD_MAGIC.as_slice())?;
        at += rel;
        if let Ok((_, seq)) = frame_at(&buf[at..])
            && seq > last_seq
        {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Decode a payload found by [`scan`] into its sequence number and row.
pub(crate) fn decode(payload: &[u8]) -> Result<(u64, Row), Flaw> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let seq = u64::from_le_bytes(r.array()?);
    let time_sec = i64::from_le_bytes(r.array()?);
    let time_us = u32::from_le_bytes(r.array()?);
    let [direction, flags] = r.array()?;
    let direction = match direction {
        0 => "in",
        1 => "out",
        _ => return Err(Flaw::BadPayload),
    };
    let table = if flags & 1 != 0 {
        Some(r.text()?)
    } else {
        None
    };
    let row = Row {
        table,
        msg: r.bytes()?.into(),
        callid: r.text()?.into(),
        method: r.text()?.into(),
        status: r.text()?.into(),
        fromip: r.text()?.into(),
        toip: r.text()?.into(),
        time_sec,
        time_us,
        time_stamp: r.text()?.into(),
        direction,
        fromtag: r.text()?.into(),
        totag: r.text()?.into(),
        traced_user: r.text()?,
    };
    if r.at != payload.len() {
        return Err(Flaw::BadPayload);
    }
    Ok((seq, row))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Flaw> {
        let end = self.at.checked_add(n).ok_or(Flaw::BadPayload)?;
        let s = self.buf.get(self.at..end).ok_or(Flaw::BadPayload)?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Flaw> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Flaw> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, Flaw> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Flaw::BadPayload)
    }
}

/// Whether `buf` starts with a valid segment header. A shorter buffer that
/// is a prefix of it is a segment torn while being created.
pub(crate) fn header_state(buf: &[u8]) -> HeaderState {
    if buf.len() >= HEADER_LEN {
        if &buf[..HEADER_LEN] == SEGMENT_MAGIC {
            HeaderState::Good
        } else {
            HeaderState::Bad
        }
    } else if SEGMENT_MAGIC.starts_with(buf) {
        HeaderState::Torn
    } else {
        HeaderState::Bad
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderState {
    Good,
    /// Empty or a prefix of the header: created, then the process died.
    Torn,
    /// Not a spool segment (or another format version).
    Bad,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u32) -> Row {
        Row {
            table: (n % 3 == 0).then(|| format!("trace_{n}")),
            msg: format!("INVITE sip:{n}@example.com SIP/2.0\r\nX: \0\u{ff}\r\n\r\n")
                .into_bytes()
                .into_iter()
                .chain([0xff, 0xfe, 0x00])
                .collect(),
            callid: format!("call-{n}").into(),
            method: "INVITE".into(),
            status: if n % 2 == 0 { "200".into() } else { "".into() },
            fromip: "udp:127.0.0.1:5060".into(),
            toip: "udp:[::1]:5070".into(),
            time_sec: 1_700_000_000 + i64::from(n),
            time_us: n * 7,
            time_stamp: "2023-11-14 22:13:20".into(),
            direction: if n % 2 == 0 { "out" } else { "in" },
            fromtag: "é€😀".into(),
            totag: "".into(),
            traced_user: "alice".into(),
        }
    }

    fn records(seqs: &[u64]) -> Vec<u8> {
        let mut buf = SEGMENT_MAGIC.to_vec();
        for &s in seqs {
            encode(s, &row(s as u32), &mut buf);
        }
        buf
    }

    fn seqs(s: &Scan) -> Vec<u64> {
        s.frames.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn crc_is_the_zlib_crc32() {
        // The standard check value of CRC-32/ISO-HDLC.
        let mut h = crc32fast::Hasher::new();
        h.update(b"123456789");
        assert_eq!(h.finalize(), 0xCBF4_3926);
    }

    #[test]
    fn rows_round_trip() {
        for n in 0..7 {
            let mut buf = Vec::new();
            let r = row(n);
            encode(u64::from(n) + 40, &r, &mut buf);
            assert_eq!(buf.len(), encoded_len(&r), "row {n}");
            let s = scan(&buf, 0, 0);
            assert_eq!(s.tail, None);
            let (seq, back) = decode(&buf[s.frames[0].payload.clone()]).unwrap();
            assert_eq!((seq, back), (u64::from(n) + 40, r));
        }
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let buf = records(&[1, 2, 3, 10]);
        let s = scan(&buf, HEADER_LEN, 0);
        assert_eq!(seqs(&s), [1, 2, 3, 10]);
        assert_eq!((&s.tail, s.skipped.len()), (&None, 0));
        assert_eq!(s.good_end(HEADER_LEN), buf.len());
        // Only what is above after_seq counts as new... and lower ones are damage.
        let s = scan(&buf, HEADER_LEN, 2);
        assert_eq!(seqs(&s), [3, 10]);
        assert_eq!(s.skipped[0].flaw, Flaw::BadPayload);
    }

    #[test]
    fn every_torn_tail_is_found_and_cut_at_the_last_good_record() {
        let buf = records(&[1, 2, 3]);
        let good = scan(&buf, HEADER_LEN, 0);
        let end2 = good.frames[1].span.end;
        // Cut anywhere inside the third record: two good, the rest is tail.
        for cut in end2 + 1..buf.len() {
            let s = scan(&buf[..cut], HEADER_LEN, 0);
            assert_eq!(seqs(&s), [1, 2], "cut at {cut}");
            let t = s.tail.clone().expect("tail");
            assert_eq!(t.span, end2..cut);
            assert_eq!(t.flaw, Flaw::Incomplete, "cut at {cut}");
            assert_eq!(s.good_end(HEADER_LEN), end2);
        }
    }

    #[test]
    fn any_flipped_byte_costs_only_its_record() {
        let buf = records(&[1, 2, 3, 4]);
        let good = scan(&buf, HEADER_LEN, 0);
        for (victim, f) in good.frames.iter().enumerate() {
            for at in f.span.clone() {
                let mut bad = buf.clone();
                bad[at] ^= 0x41;
                let s = scan(&bad, HEADER_LEN, 0);
                let mut want: Vec<u64> = vec![1, 2, 3, 4];
                want.remove(victim);
                // A changed length may make the record look longer than the
                // file: then it is the tail (last record) or is skipped.
                assert_eq!(seqs(&s), want, "flip at {at} in record {victim}");
                let damaged: Vec<&Damage> = s.skipped.iter().chain(s.tail.iter()).collect();
                assert_eq!(damaged.len(), 1, "flip at {at}");
                assert_eq!(damaged[0].span.start, f.span.start);
                if victim == 3 {
                    assert!(s.tail.is_some(), "flip at {at}");
                }
            }
        }
    }

    #[test]
    fn garbage_after_the_last_record_is_a_tail() {
        let mut buf = records(&[5, 6]);
        let end = buf.len();
        buf.extend_from_slice(b"\0\0\0garbage\xfb\xd5\x01\0\0\0zzzz");
        let s = scan(&buf, HEADER_LEN, 0);
        assert_eq!(seqs(&s), [5, 6]);
        let t = s.tail.unwrap();
        assert_eq!((t.span, t.flaw), (end..buf.len(), Flaw::BadMagic));
        // A lone zero byte (a preallocated or zero-filled tail) too.
        let mut buf = records(&[5]);
        buf.extend_from_slice(&[0; 4096]);
        let s = scan(&buf, HEADER_LEN, 0);
        assert_eq!(seqs(&s), [5]);
        assert!(s.tail.is_some());
    }

    #[test]
    fn replayed_or_reordered_records_are_not_trusted() {
        // A record older than its predecessor (a copy pasted back) is skipped.
        let mut buf = records(&[1, 2]);
        let again = records(&[1]);
        buf.extend_from_slice(&again[HEADER_LEN..]);
        let more = records(&[3]);
        buf.extend_from_slice(&more[HEADER_LEN..]);
        let s = scan(&buf, HEADER_LEN, 0);
        assert_eq!(seqs(&s), [1, 2, 3]);
        assert_eq!(s.skipped.len(), 1);
    }

    #[test]
    fn impossible_lengths_are_rejected_before_reading() {
        let mut buf = vec![0xFB, 0xD5];
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(&[0; 8]);
        let s = scan(&buf, 0, 0);
        assert_eq!(s.tail.unwrap().flaw, Flaw::BadLength);
    }

    #[test]
    fn payloads_that_do_not_decode_are_flaws() {
        let mut buf = Vec::new();
        encode(1, &row(1), &mut buf);
        let s = scan(&buf, 0, 0);
        let p = &buf[s.frames[0].payload.clone()];
        // Truncated payload, trailing byte, bad direction, bad UTF-8.
        assert_eq!(decode(&p[..p.len() - 1]), Err(Flaw::BadPayload));
        let mut longer = p.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer), Err(Flaw::BadPayload));
        let mut dir = p.to_vec();
        dir[20] = 7;
        assert_eq!(decode(&dir), Err(Flaw::BadPayload));
        let mut r = row(1);
        r.callid = "x".into();
        let mut buf = Vec::new();
        encode(1, &r, &mut buf);
        let s = scan(&buf, 0, 0);
        let mut p = buf[s.frames[0].payload.clone()].to_vec();
        let at = p.windows(1).rposition(|w| w == b"x").unwrap();
        p[at] = 0xff;
        assert!(decode(&p).is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(header_state(SEGMENT_MAGIC), HeaderState::Good);
        assert_eq!(header_state(&records(&[1])), HeaderState::Good);
        assert_eq!(header_state(b""), HeaderState::Torn);
        assert_eq!(header_state(&SEGMENT_MAGIC[..7]), HeaderState::Torn);
        assert_eq!(header_state(b"siptraced-spool\x02"), HeaderState::Bad);
        assert_eq!(header_state(b"hello"), HeaderState::Bad);
    }
}
