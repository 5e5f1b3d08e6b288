//! Branch ids for requests forwarded statelessly (RFC 3261 §16.11): the
//! same incoming request (a retransmission) gets the same branch, and so
//! do the CANCEL and the ACK for a non-2xx reply that share the INVITE's
//! top Via branch. The hash is SipHash-2-4 written here with fixed keys,
//! because std's `DefaultHasher` is only reproducible within one process
//! (RandomState): a restarted proxy must keep mapping retransmissions of
//! a request to the branch it already used. Pure; depends on `msg`, `via`.

use super::msg::SipMsg;
use super::via::MAGIC_COOKIE;

/// Fixed SipHash keys. They are not secrets (branches are only meant to be
/// unique and reproducible); two keys give 128 bits of branch id.
const KEYS: [(u64, u64); 2] = [
    (0x7369_7074_7261_6365, 0x6272_616e_6368_3031),
    (0x5249_4633_3236_3121, 0x7374_6174_656c_6573),
];

/// SipHash-2-4 of `m` (Aumasson & Bernstein, 2012).
pub(crate) fn siphash24(k0: u64, k1: u64, m: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |word: u64, v: &mut [u64; 4]| {
        v[3] ^= word;
        round(v);
        round(v);
        v[0] ^= word;
    };
    let mut chunks = m.chunks_exact(8);
    for c in &mut chunks {
        let word = c
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | (u64::from(b) << (8 * i)));
        compress(word, &mut v);
    }
    // Last block: remaining bytes, length mod 256 in the top byte.
    let last = chunks
        .remainder()
        .iter()
        .enumerate()
        .fold((m.len() as u64) << 56, |w, (i, &b)| {
            w | (u64::from(b) << (8 * i))
        });
    compress(last, &mut v);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Length-prefixed so that field boundaries cannot shift between inputs.
fn field(buf: &mut Vec<u8>, f: &[u8]) {
    buf.extend_from_slice(&(f.len() as u32).to_le_bytes());
    buf.extend_from_slice(f);
}

/// The branch for `req` forwarded statelessly. With an RFC 3261 top Via
/// branch it hashes that branch (CANCEL and non-2xx ACK carry the
/// INVITE's). Otherwise (RFC 2543 peer, or the bare cookie of RFC 4475
/// §3.2.1) it hashes From tag, Call-ID, Request-URI, top Via and the CSeq
/// number — not the method, so CANCEL matches its INVITE — and not the To
/// tag either, which an ACK for a non-2xx carries and its INVITE does not
/// (a deliberate narrowing of §16.11's list). `salt` (e.g. the outgoing
/// socket address) keeps two proxies from deriving the same branch.
pub fn stateless_branch(req: &SipMsg, salt: &[u8]) -> String {
    let mut input = Vec::with_capacity(160);
    field(&mut input, salt);
    let top = req.top_via().and_then(Result::ok);
    match top
        .filter(|v| v.has_rfc3261_branch())
        .and_then(|v| v.branch())
    {
        Some(branch) => {
            field(&mut input, b"3261");
            field(&mut input, branch.as_bytes());
        }
        None => {
            field(&mut input, b"2543");
            field(&mut input, req.from_tag().unwrap_or_default());
            field(&mut input, req.call_id().unwrap_or_default());
            field(&mut input, req.request_uri_bytes().unwrap_or_default());
            field(&mut input, req.top_via_value().unwrap_or_default());
            let num = req.cseq().map(|c| c.0.to_string()).unwrap_or_default();
            field(&mut input, num.as_bytes());
        }
    }
    let [(a0, a1), (b0, b1)] = KEYS;
    format!(
        "{MAGIC_COOKIE}{:016x}{:016x}",
        siphash24(a0, a1, &input),
        siphash24(b0, b1, &input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vectors() {
        // Reference key 00..0f and messages 00..(n-1) from the SipHash paper.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..64).collect();
        let cases: &[(usize, u64)] = &[
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
        ];
        for &(n, want) in cases {
            assert_eq!(siphash24(k0, k1, &msg[..n]), want, "len {n}");
        }
    }

    fn req(method: &str, via_branch: &str, to_tag: &str) -> SipMsg {
        let raw = format!(
            "{method} sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example{via_branch}\r\n\
From: <sip:a@a.example>;tag=f1\r\nTo: <sip:bob@b.example>{to_tag}\r\nCall-ID: c1\r\nCSeq: 5 {method}\r\nl: 0\r\n\r\n"
        );
        SipMsg::parse(raw.as_bytes()).expect("fixture parses")
    }

    #[test]
    fn same_branch_for_retransmission_cancel_and_non2xx_ack() {
        for via in [
            ";branch=z9hG4bKabc",
            "",
            ";branch=z9hG4bK",
            ";branch=old2543",
        ] {
            let invite = stateless_branch(&req("INVITE", via, ""), b"");
            assert!(
                invite.starts_with("z9hG4bK") && invite.len() == 7 + 32,
                "{invite}"
            );
            assert_eq!(
                invite,
                stateless_branch(&req("INVITE", via, ""), b""),
                "{via}"
            );
            assert_eq!(
                invite,
                stateless_branch(&req("CANCEL", via, ""), b""),
                "{via}"
            );
            assert_eq!(
                invite,
                stateless_branch(&req("ACK", via, ";tag=t9"), b""),
                "{via}"
            );
            assert_ne!(
                invite,
                stateless_branch(&req("INVITE", via, ""), b"other salt"),
                "{via}"
            );
        }
        let a = stateless_branch(&req("INVITE", ";branch=z9hG4bKabc", ""), b"");
        let b = stateless_branch(&req("INVITE", ";branch=z9hG4bKabd", ""), b"");
        assert_ne!(a, b);
        // A pinned value: a restarted or upgraded proxy must keep giving a
        // retransmission the branch it gave the original.
        assert_eq!(a, "z9hG4bKa34f069f161c8fb727fc0b691b6fdaad");
        assert_eq!(
            a,
            stateless_branch(&req("BYE", ";branch=z9hG4bKabc", ";tag=x"), b"")
        );
    }
}
