#!/usr/bin/env python3
"""Rebuilds the seed corpus under fuzz/corpus/ from the project's test data
(fuzz/README.md says which). Deterministic: run it again after the test data
changes and commit the result."""
import os
import random
import re
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
OPS_MARK = b"\0OPS\0"


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(*path):
    with open(os.path.join(ROOT, *path), "rb") as f:
        return f.read()


def rust_strings(text, pattern):
    """The Rust string literals matched by `pattern` (group 1), unescaped."""
    out = []
    for m in re.finditer(pattern, text, re.S):
        s = m.group(1)
        s = re.sub(r"\\\n\s*", "", s)
        s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda x: chr(int(x.group(1), 16)), s)
        s = (s.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")
             .replace("\\0", "\0").replace('\\"', '"').replace("\\\\", "\\"))
        out.append(s.encode())
    return out


rng = random.Random(12)

# sip: the RFC 4475 / RFC 5118 torture messages, two with extra edits.
for f in sorted(os.listdir(os.path.join(ROOT, "src/sip/testdata"))):
    if f.endswith(".dat"):
        put("sip", f[:-4], read("src/sip/testdata", f))
for f in ["esc01.dat", "regaut01.dat", "wsinv.dat", "intmeth.dat", "lwsdisp.dat", "ipv6-good.dat"]:
    put("sip", f[:-4] + "-ops", read("src/sip/testdata", f) + OPS_MARK + bytes(rng.randrange(256) for _ in range(256)))
put("sip", "reply-ops", b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP p.example;branch=z9hG4bKp, SIP/2.0/UDP a.example;branch=z9hG4bKa;rport=5070\r\n"
    b"To: <sip:bob@b.example>;tag=x\r\nFrom: <sip:alice@a.example>;tag=88\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    + OPS_MARK + bytes(rng.randrange(256) for _ in range(256)))

# mi_text: the requests of tests/mi_text.rs, one file per test, FIFO
# replies opening (first byte 0) and one with them failing (first byte 1).
mi = read("tests/mi_text.rs").decode()
for i, body in enumerate(re.split(r"\n#\[test\]\n", mi)[1:]):
    reqs = [r for r in rust_strings(body, r'(?:reply|silent|matches)\(\s*"((?:[^"\\]|\\.)*)"') if r]
    if reqs:
        put("mi_text", "test%02d" % i, b"\0" + b"".join(reqs))
put("mi_text", "reply-fails", b"\1:sip_trace:r\non\n\n:ps:r\n\n")

# jsonrpc: the request vectors, pretty (first byte 1) and compact (0).
for f in sorted(os.listdir(os.path.join(ROOT, "tests/data/jsonrpc-vectors"))):
    if f.endswith(".request"):
        data = read("tests/data/jsonrpc-vectors", f)
        put("jsonrpc", f[:-8], b"\1" + data)
put("jsonrpc", "compact-echo", b'\0{"jsonrpc":"2.0","method":"echo","params":["a",1,2.5e3,true,null,{"k":[]}],"id":"x","reply_name":"r"}')
put("jsonrpc", "fault", b'\1{"jsonrpc":"2.0","method":"fault","params":["bad \\u00e9\\n"],"id":7,"reply_name":"r"}')

# cfg: the shipped configurations, the parser's test file, the inline
# cases of src/cfg/mod.rs, and one include.
for path in ["etc/siptraced.cfg", "etc/packaged/siptraced.cfg", "src/cfg/testdata/stateful-proxy.cfg"]:
    put("cfg", path.replace("/", "_"), read(path))
cases = rust_strings(read("src/cfg/mod.rs").decode(), r'\(\s*"((?:[^"\\]|\\.)*)",\s*"')
for i, c in enumerate(cases[:120]):
    put("cfg", "case%03d" % i, c)
put("cfg", "include", b'#!define X 1\ninclude_file "b.cfg"\nimport_file "c.cfg"\nrequest_route { route(B); }\0'
    b'route[B] { xlog("L_INFO", "$rm\\n"); exit; }\0debug=3\n')

# spool_record: segments written with the record layout of
# src/spool/record.rs (after_seq 0 in the first 8 bytes).


def record(seq, fields, table=None, direction=0):
    body = struct.pack("<QqIBB", seq, 1700000000 + seq, seq * 7, direction, 1 if table is not None else 0)
    if table is not None:
        body += struct.pack("<I", len(table)) + table
    for v in fields:
        body += struct.pack("<I", len(v)) + v
    ln = struct.pack("<I", len(body))
    return b"\xfb\xd5" + ln + struct.pack("<I", zlib.crc32(ln + body)) + body


def row(n):
    return [b"INVITE sip:%d@example.com SIP/2.0\r\n\r\n" % n, b"cid%d" % n, b"INVITE", b"",
            b"udp:10.0.0.1:5060", b"udp:10.0.0.2:5060", b"2023-11-14 22:13:20", b"ft", b"", b"alice"]


header = b"siptraced-spool\x01"
recs = [record(1, row(1)), record(2, row(2), table=b"sip_trace_2", direction=1), record(3, row(3))]
put("spool_record", "good", bytes(8) + header + b"".join(recs))
torn = header + recs[0] + recs[1][:-5]
put("spool_record", "torn-tail", bytes(8) + torn)
flipped = bytearray(header + b"".join(recs))
flipped[len(header) + len(recs[0]) + 20] ^= 0x10
put("spool_record", "flipped-bit", bytes(8) + bytes(flipped))
put("spool_record", "header-only", bytes(8) + header[:9])

# hep: arbitrary bytes make the packet; a few sizes to start from.
for n in [16, 64, 300, 2000]:
    put("hep", "random%d" % n, bytes(rng.randrange(256) for _ in range(n)))
