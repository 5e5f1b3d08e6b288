"""A stand-in for siptraced's control FIFOs, to test scripts/kamctl without the daemon.

FakeServer creates a FIFO, reads requests from it in a thread (MI text framing: a first
line, then lines up to a line that is exactly "\\n"; or JSON-RPC framing: balanced braces
outside strings), records each request's exact bytes, and answers through the reply FIFO
the request names, as Kamailio does: open O_WRONLY|O_NONBLOCK, up to 5 tries 80 ms
apart, write, close.

The responder decides the answer for each request:
  bytes      write them and close
  None       never open the reply FIFO (a server that ignores the request)
  Partial(b) open, write b, and keep the FIFO open without finishing (a hung writer)

Standard library only. Run as a script to serve until interrupted:
  python3 fake_fifo_server.py mi /tmp/siptraced_fifo
"""

import os
import re
import select
import sys
import threading
import time

REPLY_TRIES = 5
REPLY_WAIT = 0.08  # seconds between tries, as FIFO_REPLY_WAIT


class Partial:
    """Answer with these bytes but never close the reply FIFO (until the server stops)."""

    def __init__(self, data):
        self.data = data


def mi_frames(buf):
    """Split complete MI requests off the front of buf: (requests, rest)."""
    out = []
    while True:
        first = buf.find(b"\n")
        if first < 0:
            return out, buf
        pos = first + 1
        end = None
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            if nl == pos:  # a line that is exactly "\n"
                end = nl + 1
                break
            pos = nl + 1
        if end is None:
            return out, buf
        out.append(buf[:end])
        buf = buf[end:]


def json_frames(buf):
    """Split complete JSON documents (from '{' to its '}') off the front of buf."""
    out = []
    start = buf.find(b"{")
    while start >= 0:
        depth, quote, i = 0, None, start
        end = None
        while i < len(buf):
            c = buf[i : i + 1]
            if quote:
                if c == b"\\":
                    i += 1
                elif c == quote:
                    quote = None
            elif c in (b'"', b"'"):
                quote = c
            elif c == b"{":
                depth += 1
            elif c == b"}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
            i += 1
        if end is None:
            return out, buf[start:]
        out.append(buf[start:end])
        buf = buf[end:]
        start = buf.find(b"{")
    return out, b""


def mi_reply_name(request):
    first = request.split(b"\n", 1)[0].rstrip(b" \t\r")
    parts = first.split(b":", 2)
    return parts[2] if len(parts) == 3 else b""


def json_reply_name(request):
    # A regular expression, not a JSON parser: kamctl may send what strict JSON refuses
    # (0x10, raw CR LF in strings), which Kamailio's parser accepts or not.
    m = re.search(rb'"reply_name"\s*:\s*"([^"]*)"', request)
    return m.group(1) if m else b""


class FakeServer:
    def __init__(self, fifo_path, protocol, responder, reply_dir="/tmp/", reads=True):
        """protocol: "mi" or "rpc". reads=False: create the FIFO but never read it."""
        self.fifo_path = fifo_path
        self.protocol = protocol
        self.responder = responder
        self.reply_dir = reply_dir
        self.reads = reads
        self.requests = []
        self.reply_paths = []
        self._held = []
        self._stop = threading.Event()
        self._thread = None
        self._rfd = self._wfd = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if os.path.lexists(self.fifo_path):
            os.unlink(self.fifo_path)
        os.mkfifo(self.fifo_path, 0o666)
        os.chmod(self.fifo_path, 0o666)
        if not self.reads:
            return
        self._rfd = os.open(self.fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        # Hold a writer so reads never see EOF between clients, as Kamailio does.
        self._wfd = os.open(self.fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        for fd in self._held + [self._rfd, self._wfd]:
            if fd is not None:
                os.close(fd)
        self._held = []
        self._rfd = self._wfd = None
        if os.path.lexists(self.fifo_path):
            os.unlink(self.fifo_path)

    def _run(self):
        buf = b""
        poller = select.poll()
        poller.register(self._rfd, select.POLLIN)
        frames = mi_frames if self.protocol == "mi" else json_frames
        name_of = mi_reply_name if self.protocol == "mi" else json_reply_name
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            try:
                data = os.read(self._rfd, 65536)
            except BlockingIOError:
                continue
            buf += data
            reqs, buf = frames(buf)
            for req in reqs:
                self.requests.append(req)
                self._answer(name_of(req), self.responder(req))

    def _answer(self, name, answer):
        if answer is None or not name:
            return
        path = self.reply_dir.encode() + name
        self.reply_paths.append(path)
        fd = None
        for _ in range(REPLY_TRIES):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                time.sleep(REPLY_WAIT)
        if fd is None:
            return
        os.set_blocking(fd, True)
        if isinstance(answer, Partial):
            os.write(fd, answer.data)
            self._held.append(fd)
            return
        os.write(fd, answer)
        os.close(fd)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("mi", "rpc"):
        sys.stderr.write("usage: fake_fifo_server.py mi|rpc FIFO\n")
        return 2

    def responder(req):
        sys.stdout.write("request: %r\n" % req)
        sys.stdout.flush()
        if sys.argv[1] == "mi":
            return b"200 OK\n\n"
        return b'{\n\t"jsonrpc":\t"2.0",\n\t"result":\t"Enabled"\n}'

    with FakeServer(sys.argv[2], sys.argv[1], responder):
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
