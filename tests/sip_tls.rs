//! SIP over TLS through the real daemon (docs/decisions.md §19), with a
//! TLS client and a TLS UAS of the test's own (rustls; sipp here has no
//! TLS) and certificates made at test time with the openssl CLI: a call
//! through `listen=tls` over TLS 1.2 and 1.3 whose rows hold the
//! decrypted messages, byte-equal to what was sent, with `tls:` addresses
//! and the sockets' real ports; a bad certificate and a stalled handshake
//! beside UDP calls that all complete.

mod common;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = TempDir::new(tag);
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .expect("openssl CLI");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=siptraced test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "host.key",
            "-out",
            "host.csr",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "host.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "host.pem",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn certs(&self, name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(self.path(name))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(self.path("host.key")).unwrap()
    }

    /// A client trusting `ca` ("ca.pem" or "other-ca.pem"), speaking
    /// `versions`.
    fn client(
        &self,
        ca: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certs(ca) {
            roots.add(c).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn server(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(self.certs("host.pem"), self.key())
                .unwrap(),
        )
    }
}

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type Tls<S> = rustls::StreamOwned<S, TcpStream>;

/// One SIP message from a stream (Content-Length framing).
fn read_msg<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[..end + 4];
            let len: usize = header(head, "Content-Length")
                .or_else(|| header(head, "l"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf.drain(..end + 4 + len).collect();
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).expect("read a SIP message");
        assert!(n > 0, "stream closed while a message was expected");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A TLS UAS: answers every request but ACK with 200 on the connection
/// it came on; reports the peer address (the daemon's side) of its
/// connection and every message it received.
fn tls_uas(pki: &Pki) -> (u16, std::sync::mpsc::Receiver<(SocketAddr, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = pki.server();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((sock, peer)) = l.accept() else { return };
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut s: Tls<rustls::ServerConnection> = rustls::StreamOwned::new(conn, sock);
        let mut buf = Vec::new();
        loop {
            let m = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_msg(&mut s, &mut buf)
            })) {
                Ok(m) => m,
                Err(_) => return,
            };
            let is_ack = m.starts_with(b"ACK ");
            if tx.send((peer, m.clone())).is_err() {
                return;
            }
            if !is_ack {
                let r = reply_to(&m, 200, "OK", "uas-tag");
                if s.write_all(&r).is_err() {
                    return;
                }
            }
        }
    });
    (port, rx)
}

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
listen=tls:127.0.0.1:@TLSPORT@
enable_tls=yes
tcp_connect_timeout=2
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "tls.so"
loadmodule "siptrace.so"
modparam("tls", "certificate", "@CERT@")
modparam("tls", "private_key", "@KEY@")
modparam("tls", "ca_list", "@CA@")
modparam("tls", "verify_certificate", 1)
modparam("tls", "tls_method", "TLSv1.2+")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)

request_route {
    if (!has_totag()) {
        sip_trace();
    }
    setflag(22);
    if (has_totag()) {
        if (!loose_route()) {
            if (is_method("ACK") && t_check_trans()) {
                exit;
            }
            $du = "@NEXT@";
        }
        t_relay();
        exit;
    }
    record_route();
    $ru = "@NEXT@";
    t_relay();
}
"#;

fn daemon(pki: &Pki, next: &str) -> (Daemon, u16) {
    let tls_port = free_port();
    let cfg = CFG
        .replace("@TLSPORT@", &tls_port.to_string())
        .replace("@CERT@", &pki.path("host.pem").display().to_string())
        .replace("@KEY@", &pki.path("host.key").display().to_string())
        .replace("@CA@", &pki.path("ca.pem").display().to_string())
        .replace("@NEXT@", next);
    (Daemon::start("tls", &cfg), tls_port)
}

fn request(method: &str, cseq: u32, local: SocketAddr, call_id: &str, branch: &str) -> Vec<u8> {
    let to_tag = if method == "INVITE" {
        String::new()
    } else {
        ";tag=uas-tag".to_string()
    };
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sips:alice@127.0.0.1>;tag=a-{call_id}\r\n\
         To: <sips:bob@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sips:alice@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn status(m: &[u8]) -> String {
    first_line(m)
}

fn kind(r: &TraceRow) -> String {
    format!("{} {} {}", r.direction, r.method, r.status)
        .trim_end()
        .to_string()
}

/// One call INVITE/100/200/ACK/BYE/200 over a TLS connection of the
/// given versions; checks what was stored.
fn call_over(versions: &[&'static rustls::SupportedProtocolVersion], call_id: &str) {
    let pki = Pki::new("tls-pki");
    let (uas_port, uas_rx) = tls_uas(&pki);
    let next = format!("sip:bob@127.0.0.1:{uas_port};transport=tls");
    let (d, tls_port) = daemon(&pki, &next);
    let sock = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let conn = rustls::ClientConnection::new(
        pki.client("ca.pem", versions),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut c: Tls<rustls::ClientConnection> = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let invite = request("INVITE", 1, local, call_id, "inv");
    c.write_all(&invite).unwrap();
    assert!(status(&read_msg(&mut c, &mut buf)).starts_with("SIP/2.0 100"));
    let ok = read_msg(&mut c, &mut buf);
    assert!(status(&ok).starts_with("SIP/2.0 200"), "{}", status(&ok));
    let version = c.conn.protocol_version().unwrap();
    assert_eq!(version, versions[0].version, "negotiated version");
    c.write_all(&request("ACK", 1, local, call_id, "ack"))
        .unwrap();
    let bye = request("BYE", 2, local, call_id, "bye");
    c.write_all(&bye).unwrap();
    let ok = read_msg(&mut c, &mut buf);
    assert!(status(&ok).starts_with("SIP/2.0 200"), "{}", status(&ok));
    assert_eq!(header(&ok, "CSeq").as_deref(), Some("2 BYE"));
    // The UAS saw INVITE, ACK, BYE on one connection from our side.
    let got: Vec<(SocketAddr, Vec<u8>)> = (0..3)
        .map(|_| uas_rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    let ours = got[0].0;
    assert!(got.iter().all(|(p, _)| *p == ours), "one connection reused");
    assert!(got[0].1.starts_with(b"INVITE "));
    assert!(String::from_utf8_lossy(&got[0].1).contains("Via: SIP/2.0/TLS 127.0.0.1:"));

    let rows = d.wait_rows(9);
    let mut kinds: Vec<String> = rows.iter().map(kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "in BYE 200",
            "in INVITE",
            "in INVITE 200",
            "out ACK",
            "out BYE",
            "out BYE 200",
            "out INVITE",
            "out INVITE 100",
            "out INVITE 200",
        ]
    );
    let me = format!("tls:127.0.0.1:{tls_port}");
    let client = format!("tls:{local}");
    let uas = format!("tls:127.0.0.1:{uas_port}");
    let ours = format!("tls:{ours}");
    for r in &rows {
        let want = match kind(r).as_str() {
            "in INVITE" => (client.as_str(), me.as_str()),
            "out INVITE 100" | "out INVITE 200" | "out BYE 200" => (me.as_str(), client.as_str()),
            "out INVITE" | "out ACK" | "out BYE" => (ours.as_str(), uas.as_str()),
            _ => (uas.as_str(), ours.as_str()),
        };
        assert_eq!((r.fromip.as_str(), r.toip.as_str()), want, "{}", kind(r));
    }
    let inv = rows.iter().find(|r| kind(r) == "in INVITE").unwrap();
    assert_eq!(
        inv.msg, invite,
        "the decrypted bytes, as the client sent them"
    );
    let out = rows.iter().find(|r| kind(r) == "out INVITE").unwrap();
    assert_eq!(
        out.msg, got[0].1,
        "the decrypted bytes, as the UAS got them"
    );
}

#[test]
fn a_call_over_tls13_is_stored_decrypted_with_real_ports() {
    call_over(&[&rustls::version::TLS13], "tls13-call");
}

#[test]
fn a_call_over_tls12_is_stored_decrypted_with_real_ports() {
    call_over(&[&rustls::version::TLS12], "tls12-call");
}

#[test]
fn a_bad_certificate_and_a_stalled_handshake_leave_udp_calls_alone() {
    let pki = Pki::new("tls-bad");
    let uas_port = free_port();
    let (d, tls_port) = daemon(&pki, &format!("sip:service@127.0.0.1:{uas_port}"));
    // Half a ClientHello, then nothing.
    let mut stalled = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // A client that does not trust our certificate gives up.
    let sock = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = rustls::ClientConnection::new(
        pki.client("other-ca.pem", &[&rustls::version::TLS13]),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut bad: Tls<rustls::ClientConnection> = rustls::StreamOwned::new(conn, sock);
    let e = bad.write_all(b"OPTIONS").and_then(|_| bad.flush());
    let e = e.err().or_else(|| bad.read(&mut [0u8; 16]).err());
    assert!(
        e.is_some_and(|e| e.to_string().contains("certificate")),
        "the handshake must fail on the certificate"
    );
    // UDP calls flow meanwhile, every one of them.
    let mut uas = Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-nostdin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp");
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &d.addr().to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "50",
            "-r",
            "50",
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("sipp");
    let _ = uas.kill();
    let _ = uas.wait();
    assert!(
        out.status.success(),
        "UDP calls failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The stalled handshake is given up after tcp_connect_timeout (2 s).
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut b = [0u8; 64];
    let n = stalled.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed by the daemon");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn listen_tls_without_enable_tls_is_a_warning_not_a_socket() {
    let dir = TempDir::new("tls-off");
    let path = dir.join("k.cfg");
    std::fs::write(
        &path,
        "#!KAMAILIO\nlisten=udp:127.0.0.1:5060\nlisten=tls:127.0.0.1:5061\nrequest_route {\n    exit;\n}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            ":3:8: listen=tls:127.0.0.1:5061: TLS needs enable_tls=yes and loadmodule \"tls.so\""
        ),
        "{err}"
    );
}

#[test]
fn require_certificate_refuses_a_client_without_one_and_serves_one_with_it() {
    let pki = Pki::new("tls-mutual");
    let peer = Peer::new();
    let tls_port = free_port();
    let cfg = CFG
        .replace("@TLSPORT@", &tls_port.to_string())
        .replace("@CERT@", &pki.path("host.pem").display().to_string())
        .replace("@KEY@", &pki.path("host.key").display().to_string())
        .replace("@CA@", &pki.path("ca.pem").display().to_string())
        .replace(
            "modparam(\"tls\", \"verify_certificate\", 1)",
            "modparam(\"tls\", \"verify_certificate\", 1)\nmodparam(\"tls\", \"require_certificate\", 1)",
        )
        .replace("@NEXT@", &format!("sip:bob@127.0.0.1:{}", peer.port()));
    let d = Daemon::start("tls-mutual", &cfg);
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        for c in pki.certs("ca.pem") {
            r.add(c).unwrap();
        }
        r
    };
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
    };
    let open = |cfg: rustls::ClientConfig| {
        let sock = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        let conn = rustls::ClientConnection::new(
            Arc::new(cfg),
            ServerName::try_from("127.0.0.1").unwrap(),
        )
        .unwrap();
        let c: Tls<rustls::ClientConnection> = rustls::StreamOwned::new(conn, sock);
        (c, local)
    };
    // Without a certificate: the server refuses it (TLS 1.3: its alert
    // comes after the client's first flight).
    let (mut c, local) = open(builder().with_no_client_auth());
    let r = c
        .write_all(&request("OPTIONS", 1, local, "no-cert", "nc"))
        .and_then(|_| c.flush())
        .and_then(|_| c.read(&mut [0u8; 1]));
    match r {
        Ok(0) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("{n} bytes answered to a client without a certificate"),
    }
    // With one the CA signed: relayed.
    let with = builder()
        .with_client_auth_cert(pki.certs("host.pem"), pki.key())
        .unwrap();
    let (mut c, local) = open(with);
    c.write_all(&request("OPTIONS", 1, local, "with-cert", "wc"))
        .unwrap();
    c.flush().unwrap();
    let (got, _) = peer.recv();
    assert_eq!(header(&got, "Call-ID").as_deref(), Some("with-cert"));
    let rows = d.wait_rows_where(1, |r| r.callid == "with-cert");
    assert_eq!(rows.len(), 1);
    assert!(d.rows().iter().all(|r| r.callid != "no-cert"));
}
