"""Tests of scripts/kamctl under dash against FakeServer (tests/tools/fake_fifo_server.py).

Each test runs kamctl as `dash scripts/kamctl ...` in its own process group, checks the
exact request bytes the server received, stdout, stderr and the exit status, that the
reply FIFO is gone afterwards and that no process of kamctl's group is left.

Run: python3 tests/tools/test_kamctl.py   (needs dash, mkfifo, awk, sleep, expand)
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_fifo_server import FakeServer, Partial  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KAMCTL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "kamctl")

R_ENABLED = b'{\n\t"jsonrpc":\t"2.0",\n\t"result":\t"Enabled",\n\t"id":\t%d\n}'
E_BOGUS = (
    b'{\n\t"jsonrpc":\t"2.0",\n\t"error":\t{\n\t\t"code":\t500,\n\t\t"message":\t'
    b'"Bad parameter (on, off or check)"\n\t},\n\t"id":\t%d\n}'
)
PSX = (
    b'{\n\t"jsonrpc":\t"2.0",\n\t"result":\t[{\n\t\t\t"IDX":\t0,\n\t\t\t"PID":\t8857,\n'
    b'\t\t\t"DSC":\t"main process - attendant"\n\t\t}, {\n\t\t\t"IDX":\t1,\n\t\t\t"PID":\t8858,\n'
    b'\t\t\t"DSC":\t"timer"\n\t\t}],\n\t"id":\t%d\n}'
)
PS = (
    b'{\n\t"jsonrpc":\t"2.0",\n\t"result":\t[8857, "main process - attendant", 8858, '
    b'"udp receiver child=0 sock=127.0.0.1:5097", 8859, "a, \\"b\\""],\n\t"id":\t%d\n}'
)


class KamctlTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kamctl_test_")
        self.chroot = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(self.chroot, "tmp"))
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.mi_fifo = os.path.join(self.dir, "mi.fifo")
        self.rpc_fifo = os.path.join(self.dir, "rpc.fifo")
        self.reply_dir = self.chroot + "/tmp/"

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, **extra):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "OSER_FIFO": self.mi_fifo,
            "RPCFIFOPATH": self.rpc_fifo,
            "CHROOT_DIR": self.chroot,
            "KAMCTL_TIMEOUT": "2",
        }
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def kamctl(self, *args, env=None, script=KAMCTL, timeout=20):
        """Run kamctl; return (pid, rc, stdout, stderr, seconds)."""
        start = time.monotonic()
        p = subprocess.Popen(
            ["dash", script] + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else self.env(),
            start_new_session=True,
        )
        out, err = p.communicate(timeout=timeout)
        took = time.monotonic() - start
        self.assert_no_leftovers(p.pid)
        return p.pid, p.returncode, out, err, took

    def assert_no_leftovers(self, pgid):
        for _ in range(20):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.killpg(pgid, signal.SIGKILL)
        self.fail("processes of kamctl's group %d were left running" % pgid)

    def assert_reply_fifo_gone(self, pid, chroot=None):
        root = self.chroot if chroot is None else chroot
        path = "%s/tmp/kamailio_receiver_%d" % (root, pid)
        self.assertFalse(os.path.lexists(path), path)

    # ---- MI FIFO ----

    def mi(self, responder, *args, **kw):
        with FakeServer(self.mi_fifo, "mi", responder, self.reply_dir) as srv:
            pid, rc, out, err, took = self.kamctl(*args, **kw)
        self.assert_reply_fifo_gone(pid)
        return srv, pid, rc, out, err

    def test_fifo_sip_trace_on(self):
        srv, pid, rc, out, err = self.mi(lambda r: b"200 OK\n\n", "fifo", "sip_trace", "on")
        self.assertEqual(srv.requests, [b":sip_trace:kamailio_receiver_%d\non\n\n" % pid])
        self.assertEqual((rc, out, err), (0, b"", b""))

    def test_fifo_status_and_errors(self):
        cases = [
            (b"200 OK\non\n\n", b"on\n"),
            (b"200 OK\noff\n\n", b"off\n"),
            (b"400 Bad parameter\n\n", b"400 Bad parameter\n"),
            (b"500 command 'x' not available\n", b"500 command 'x' not available\n"),
            (
                b"200 OK\nServer:: siptraced (1 (x/linux))\nBuild:: b\n\nFlags:: f\n\n",
                b"Server:: siptraced (1 (x/linux))\nBuild:: b\nFlags:: f\n",
            ),
            (b"200 OK\nProcess::  ID=0 PID=1 Type=main\n\n", b"Process::  ID=0 PID=1 Type=main\n"),
        ]
        for reply, shown in cases:
            srv, pid, rc, out, err = self.mi(lambda r: reply, "fifo", "sip_trace")
            self.assertEqual(srv.requests, [b":sip_trace:kamailio_receiver_%d\n\n" % pid])
            self.assertEqual((rc, out, err), (0, shown, b""), reply)

    def test_fifo_arguments(self):
        srv, pid, rc, out, err = self.mi(
            lambda r: b"200 OK\n\n", "fifo", "debug", "3", "x::y", "", "ignored"
        )
        self.assertEqual(srv.requests, [b":debug:kamailio_receiver_%d\n3\nx::y\n\n" % pid])
        # As kamctl, the request is printf's format: escapes in arguments are interpreted.
        srv, pid, rc, out, err = self.mi(lambda r: b"200 OK\n\n", "fifo", "x", "a\\tb")
        self.assertEqual(srv.requests, [b":x:kamailio_receiver_%d\na\tb\n\n" % pid])

    def test_default_reply_fifo_is_under_tmp(self):
        env = self.env(CHROOT_DIR=None)
        with FakeServer(self.mi_fifo, "mi", lambda r: b"200 OK\non\n\n", "/tmp/") as srv:
            pid, rc, out, err, took = self.kamctl("fifo", "sip_trace", env=env)
        self.assertEqual(srv.reply_paths, [b"/tmp/kamailio_receiver_%d" % pid])
        self.assertEqual((rc, out), (0, b"on\n"))
        self.assert_reply_fifo_gone(pid, chroot="")

    # ---- JSON-RPC ----

    def rpc(self, responder, *args, **kw):
        with FakeServer(self.rpc_fifo, "rpc", responder, self.reply_dir) as srv:
            pid, rc, out, err, took = self.kamctl(*args, **kw)
        self.assert_reply_fifo_gone(pid)
        return srv, pid, rc, out, err

    def test_rpc_siptrace_status_as_kamctl(self):
        def answer(req):
            pid = int(req.rsplit(b'"id": ', 1)[1].split(b"}")[0])
            return (E_BOGUS if b"bogus" in req else R_ENABLED) % pid

        srv, pid, rc, out, err = self.rpc(answer, "rpc", "siptrace.status", "on")
        self.assertEqual(
            srv.requests,
            [
                b'{"jsonrpc": "2.0", "method": "siptrace.status", "params": ["on"], '
                b'"reply_name": "kamailio_receiver_%d", "id": %d}' % (pid, pid)
            ],
        )
        # Exactly what Kamailio 5.6's kamctl printed (jsonrpc-vectors/index.md).
        self.assertEqual(
            (rc, out, err),
            (0, b'{\n  "jsonrpc":  "2.0",\n  "result": "Enabled",\n  "id": %d\n}\n' % pid, b""),
        )
        srv, pid, rc, out, err = self.rpc(answer, "rpc", "siptrace.status", "bogus")
        self.assertEqual(
            (rc, out),
            (
                0,
                b'{\n  "jsonrpc":  "2.0",\n  "error":  {\n    "code": 500,\n    "message":  '
                b'"Bad parameter (on, off or check)"\n  },\n  "id": %d\n}\n' % pid,
            ),
        )

    def test_rpc_request_bytes(self):
        cases = [
            (["core.version"], b'{"jsonrpc": "2.0", "method": "core.version", "reply_name": '),
            (
                ["m", "s:foo", "i:12", "1.5", "abc", "0x10", "-3", "", "dropped"],
                b'{"jsonrpc": "2.0", "method": "m", "params": ["foo", 12, 1.5, "abc", 0x10, -3], '
                b'"reply_name": ',
            ),
            (["m", "s:12"], b'{"jsonrpc": "2.0", "method": "m", "params": ["12"], "reply_name": '),
            (
                ["=", "m", "a=CRLF=b", "c=CRLF=d=CRLF=e"],
                b'{"jsonrpc": "2.0", "method": "m", "params": ["a=CRLF=b", "c\r\nd\r\ne"], '
                b'"reply_name": ',
            ),
        ]
        for args, head in cases:
            srv, pid, rc, out, err = self.rpc(lambda r: R_ENABLED % 1, "rpc", *args)
            tail = b'"kamailio_receiver_%d", "id": %d}' % (pid, pid)
            self.assertEqual(srv.requests, [head + tail], args)
            self.assertEqual(rc, 0)

    def test_rpc_array_results_are_reflowed(self):
        srv, pid, rc, out, err = self.rpc(lambda r: PS % 7, "rpc", "core.ps")
        self.assertEqual(
            out,
            b'{\n  "jsonrpc":  "2.0",\n  "result": [\n    8857,\n    "main process - attendant",\n'
            b'    8858,\n    "udp receiver child=0 sock=127.0.0.1:5097",\n    8859,\n'
            b'    "a, \\"b\\""\n  ],\n  "id": 7\n}\n',
        )
        srv, pid, rc, out, err = self.rpc(lambda r: PSX % 7, "rpc", "core.psx")
        self.assertEqual(
            out,
            b'{\n  "jsonrpc":  "2.0",\n  "result": [\n    {\n      "IDX":  0,\n      "PID":  8857,\n'
            b'      "DSC":  "main process - attendant"\n    }, {\n      "IDX":  1,\n'
            b'      "PID":  8858,\n      "DSC":  "timer"\n    }\n  ],\n  "id": 7\n}\n',
        )

    # ---- engines and shortcuts ----

    def test_ps_uptime_stats_follow_ctlengine(self):
        cases = [
            ("FIFO", ["ps"], b":ps:kamailio_receiver_%d\n\n"),
            ("FIFO", ["uptime"], b":uptime:kamailio_receiver_%d\n\n"),
            ("FIFO", ["stats"], b":get_statistics:kamailio_receiver_%d\nall\n\n"),
            ("FIFO", ["stats", "siptrace"], b":get_statistics:kamailio_receiver_%d\nsiptrace:\n\n"),
        ]
        for engine, args, req in cases:
            srv, pid, rc, out, err = self.mi(
                lambda r: b"200 OK\nx\n\n", *args, env=self.env(CTLENGINE=engine)
            )
            self.assertEqual(srv.requests, [req % pid], args)
            self.assertEqual((rc, out), (0, b"x\n"))
        rpc_cases = [
            (["ps"], b'"method": "core.psx", "reply_name"'),
            (["uptime"], b'"method": "core.uptime", "reply_name"'),
            (["stats"], b'"method": "stats.get_statistics", "params": ["all"]'),
            (["stats", "siptrace"], b'"params": ["siptrace:"]'),
        ]
        for args, part in rpc_cases:
            srv, pid, rc, out, err = self.rpc(
                lambda r: R_ENABLED % 1, *args, env=self.env(CTLENGINE="RPCFIFO")
            )
            self.assertIn(part, srv.requests[0], args)
            self.assertEqual(rc, 0)
        pid, rc, out, err, took = self.kamctl("ps", env=self.env(CTLENGINE="bogus"))
        self.assertEqual(rc, 1)
        self.assertIn(b"unknown CTLENGINE", err)

    def test_monitor_one_cycle(self):
        def answer(req):
            cmd = req.split(b":")[1]
            return {
                b"version": b"200 OK\nServer:: siptraced (1)\n\n",
                b"uptime": b"200 OK\nUp time:: 6 [sec]\n\n",
                b"get_statistics": b"200 OK\nsiptrace:rows_written = 1\n\n",
            }[cmd]

        srv, pid, rc, out, err = self.mi(answer, "monitor", "1")
        self.assertEqual(len(srv.requests), 3)
        self.assertEqual(rc, 0)
        self.assertIn(b"Server:: siptraced (1)\nUp time:: 6 [sec]\n", out)
        self.assertIn(b"siptrace:rows_written = 1\n", out)

    def test_version_and_usage(self):
        pid, rc, out, err, took = self.kamctl("version")
        self.assertEqual(rc, 0)
        self.assertTrue(out.endswith(b" 1.0.0 (siptraced)\n"), out)
        pid, rc, out, err, took = self.kamctl("nosuch")
        self.assertEqual(rc, 1)
        self.assertIn(b"unknown command", err)
        pid, rc, out, err, took = self.kamctl()
        self.assertEqual(rc, 1)

    # ---- failures never hang ----

    def test_timeout_when_reply_fifo_never_opened(self):
        for proto, args in (("mi", ["fifo", "sip_trace"]), ("rpc", ["rpc", "core.uptime"])):
            fifo = self.mi_fifo if proto == "mi" else self.rpc_fifo
            with FakeServer(fifo, proto, lambda r: None, self.reply_dir) as srv:
                pid, rc, out, err, took = self.kamctl(*args, env=self.env(KAMCTL_TIMEOUT="1"))
            self.assertEqual(len(srv.requests), 1)
            self.assertEqual((rc, out), (1, b""))
            self.assertIn(b"no reply within 1 s", err)
            self.assertTrue(0.9 < took < 4, took)
            self.assert_reply_fifo_gone(pid)

    def test_timeout_when_nothing_reads_the_server_fifo(self):
        with FakeServer(self.mi_fifo, "mi", lambda r: b"", self.reply_dir, reads=False):
            pid, rc, out, err, took = self.kamctl(
                "fifo", "sip_trace", env=self.env(KAMCTL_TIMEOUT="1")
            )
        self.assertEqual(rc, 1)
        self.assertIn(b"nothing reads " + self.mi_fifo.encode(), err)
        self.assertTrue(took < 4, took)
        self.assert_reply_fifo_gone(pid)

    def test_timeout_on_incomplete_reply(self):
        srv, pid, rc, out, err = self.mi(
            lambda r: Partial(b"200 OK\n"),
            "fifo",
            "sip_trace",
            env=self.env(KAMCTL_TIMEOUT="1"),
        )
        self.assertEqual(rc, 1)
        self.assertIn(b"incomplete reply", err)

    def test_missing_server_fifo_exits_2(self):
        pid, rc, out, err, took = self.kamctl("fifo", "sip_trace")
        self.assertEqual(rc, 2)
        self.assertIn(b"cannot write to FIFO " + self.mi_fifo.encode(), err)
        pid, rc, out, err, took = self.kamctl("rpc", "core.ps")
        self.assertEqual(rc, 2)

    def test_bad_timeout_value(self):
        pid, rc, out, err, took = self.kamctl("fifo", "ps", env=self.env(KAMCTL_TIMEOUT="x"))
        self.assertEqual(rc, 1)
        self.assertIn(b"KAMCTL_TIMEOUT", err)

    # ---- configuration ----

    def test_kamctlrc_order_and_environment(self):
        # A copy of the script with its own ../etc/kamctlrc.
        root = os.path.join(self.dir, "inst")
        os.makedirs(os.path.join(root, "scripts"))
        os.makedirs(os.path.join(root, "etc"))
        script = os.path.join(root, "scripts", "kamctl")
        shutil.copy(KAMCTL, script)
        fifo_a = os.path.join(self.dir, "a.fifo")
        fifo_b = os.path.join(self.dir, "b.fifo")
        fifo_c = os.path.join(self.dir, "c.fifo")
        with open(os.path.join(root, "etc", "kamctlrc"), "w") as f:
            f.write("OSER_FIFO=%s\nKAMCTL_TIMEOUT=3\n" % fifo_a)
        base = self.env(OSER_FIFO=None)

        def which_fifo(env):
            servers = [
                FakeServer(p, "mi", lambda r, p=p: b"200 OK\n%s\n\n" % p.encode(), self.reply_dir)
                for p in (fifo_a, fifo_b, fifo_c)
            ]
            for s in servers:
                s.start()
            try:
                pid, rc, out, err, took = self.kamctl("fifo", "x", env=env, script=script)
            finally:
                for s in servers:
                    s.stop()
            self.assertEqual(rc, 0, err)
            return out.strip().decode()

        self.assertEqual(which_fifo(base), fifo_a)
        with open(os.path.join(self.home, ".kamctlrc"), "w") as f:
            f.write("SIPTRACED_FIFO=%s\n" % fifo_c)
        self.assertEqual(which_fifo(base), fifo_a)  # a file's OSER_FIFO beats its alias
        with open(os.path.join(self.home, ".kamctlrc"), "w") as f:
            f.write("OSER_FIFO=%s\n" % fifo_b)
        self.assertEqual(which_fifo(base), fifo_b)  # ~/.kamctlrc is read last
        env = dict(base, SIPTRACED_FIFO=fifo_c)
        self.assertEqual(which_fifo(env), fifo_c)  # the environment wins, alias too
        env = dict(base, SIPTRACED_FIFO=fifo_c, OSER_FIFO=fifo_a)
        self.assertEqual(which_fifo(env), fifo_a)


if __name__ == "__main__":
    unittest.main(verbosity=2)
