// Checks the spool record scanner and codec (src/spool/record.rs) on any
// segment bytes, as start-up recovery meets them after a crash or disk
// damage: no panic; the good records, skipped spans and torn tail it reports
// tile the scanned range in order without gaps or overlaps; sequence
// numbers rise; and every payload that decodes re-encodes to exactly the
// record that was read (so replay writes the row that was spooled).
//
// Input: 8 bytes that choose `after_seq` (0 to 3, so that the small
// sequence numbers a fuzzer writes still count), then the segment file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siptraced::fuzz_api::spool;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (seq, buf) = data.split_at(8);
    let after_seq = u64::from_le_bytes(seq.try_into().unwrap()) % 4;
    let _ = spool::header_state(buf);
    let start = spool::HEADER_LEN.min(buf.len());
    let scan = spool::scan(buf, start, after_seq);

    let mut pieces: Vec<(std::ops::Range<usize>, Option<u64>)> = Vec::new();
    pieces.extend(scan.frames.iter().map(|f| (f.span.clone(), Some(f.seq))));
    pieces.extend(scan.skipped.iter().map(|d| (d.span.clone(), None)));
    pieces.extend(scan.tail.iter().map(|d| (d.span.clone(), None)));
    pieces.sort_by_key(|p| p.0.start);
    let mut at = start;
    let mut last = after_seq;
    for (span, seq) in &pieces {
        assert_eq!(span.start, at, "gap or overlap at {at}: {pieces:?}");
        assert!(
            span.end > span.start && span.end <= buf.len(),
            "bad span {span:?}"
        );
        if let Some(seq) = seq {
            assert!(*seq > last, "sequence {seq} after {last}");
            last = *seq;
        }
        at = span.end;
    }
    assert_eq!(at, buf.len(), "scan stopped before the end");
    if let Some(t) = &scan.tail {
        assert_eq!(t.span.end, buf.len(), "tail does not run to the end");
    }

    for fr in &scan.frames {
        assert_eq!(fr.payload.end, fr.span.end);
        assert_eq!(fr.payload.start, fr.span.start + spool::FRAME_OVERHEAD);
        let Ok((seq, row)) = spool::decode(&buf[fr.payload.clone()]) else {
            continue;
        };
        assert_eq!(seq, fr.seq, "payload and frame disagree on the sequence");
        let mut again = Vec::new();
        spool::encode(seq, &row, &mut again);
        assert_eq!(spool::encoded_len(&row), again.len(), "encoded_len");
        assert_eq!(
            again,
            &buf[fr.span.clone()],
            "re-encoding differs from the record read"
        );
    }
});
