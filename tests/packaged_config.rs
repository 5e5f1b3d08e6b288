//! The packaged configuration (etc/packaged/siptraced.cfg) is not an open
//! relay: through the real daemon, a request for a host that is neither the
//! next hop nor a relay domain gets `403 Relaying Forbidden` (traced) and
//! nothing leaves towards that host, while requests for the next hop or a
//! relay domain are relayed.

mod common;
use common::*;
use std::net::SocketAddr;

/// Sends an INVITE whose Request-URI is `sip:bob@<target>` through the proxy.
fn invite(d: &Daemon, uac: &Peer, target: SocketAddr, call_id: &str) {
    let inv = sip_invite(uac.addr(), d.addr(), target, call_id, "none");
    uac.send(d.addr(), &inv);
}

/// Whether a datagram is already queued on `p` (does not wait: the callers
/// know that anything sent to it would already be there).
fn has_datagram(p: &Peer) -> bool {
    p.sock.set_nonblocking(true).unwrap();
    let got = p.sock.recv_from(&mut [0u8; 65535]).is_ok();
    p.sock.set_nonblocking(false).unwrap();
    got
}

/// A foreign host: a loopback address that is not the next hop, listened on
/// so that anything relayed there would be seen.
fn foreign() -> Peer {
    Peer::bind("127.0.0.9:0")
}

fn forbidden_and_traced(d: &Daemon, uac: &Peer, call_id: &str) {
    let (reply, _) = uac.recv();
    assert_eq!(first_line(&reply), "SIP/2.0 403 Relaying Forbidden");
    assert_eq!(header(&reply, "Call-ID").as_deref(), Some(call_id));
    let rows = d.wait_rows_where(2, |r| r.callid == call_id);
    let seen: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}", r.direction, r.method, r.status))
        .collect();
    assert_eq!(seen, ["in INVITE ", "out INVITE 403"], "{call_id}");
}

#[test]
fn with_a_next_hop_only_requests_for_it_are_relayed() {
    let uas = Peer::new();
    let uac = Peer::new();
    let other = foreign();
    let port = format!("NEXT_PORT={}", uas.port());
    let d = Daemon::start_with(
        "pkg-nexthop",
        &shipped_for_test("etc/packaged/siptraced.cfg"),
        &["-A", "NEXT_HOP=127.0.0.1", "-A", &port],
    );

    invite(&d, &uac, other.addr(), "foreign-1");
    forbidden_and_traced(&d, &uac, "foreign-1");

    // The next hop's own domain is relayed, to the next hop.
    invite(&d, &uac, uas.addr(), "nexthop-1");
    let (fwd, _) = uas.recv();
    assert!(first_line(&fwd).starts_with("INVITE sip:bob@127.0.0.1:"));
    assert_eq!(header(&fwd, "Call-ID").as_deref(), Some("nexthop-1"));

    // The forbidden INVITE was handled first: had it been relayed, it would
    // have been sent before the one just received.
    assert!(!has_datagram(&other), "a request reached the foreign host");
    assert!(
        !has_datagram(&uas),
        "the forbidden request reached the next hop"
    );
}

#[test]
fn without_a_next_hop_only_relay_domains_are_relayed() {
    let uas = Peer::new();
    let uac = Peer::new();
    let other = foreign();
    let d = Daemon::start_with(
        "pkg-domains",
        &shipped_for_test("etc/packaged/siptraced.cfg"),
        &["-A", r#"RELAY_DOMAINS="^127\.0\.0\.1$""#],
    );

    invite(&d, &uac, other.addr(), "foreign-2");
    forbidden_and_traced(&d, &uac, "foreign-2");

    // A relay domain goes to its Request-URI.
    invite(&d, &uac, uas.addr(), "domain-2");
    let (fwd, from) = uas.recv();
    assert_eq!(from, d.addr());
    assert_eq!(header(&fwd, "Call-ID").as_deref(), Some("domain-2"));
    assert!(!has_datagram(&other), "a request reached the foreign host");
}

#[test]
fn as_shipped_nothing_is_relayed() {
    let uac = Peer::new();
    let other = foreign();
    let d = Daemon::start(
        "pkg-shipped",
        &shipped_for_test("etc/packaged/siptraced.cfg"),
    );
    invite(&d, &uac, other.addr(), "foreign-3");
    forbidden_and_traced(&d, &uac, "foreign-3");
    // OPTIONS to the proxy itself is still answered.
    let ok = send_options(&uac, d.addr(), "ping-3");
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    assert!(!has_datagram(&other), "a request reached the foreign host");

    // In-dialog: a forged Route (not this proxy's) is not followed...
    let ours = format!("Route: <sip:{};lr>", d.addr());
    let bye = |call_id: &str, route: &str| {
        let b = sip_in_dialog(
            "BYE",
            2,
            uac.addr(),
            d.addr(),
            other.addr(),
            call_id,
            "none",
            call_id,
        );
        replace_bytes(&b, ours.as_bytes(), route.as_bytes())
    };
    uac.send(
        d.addr(),
        &bye("forged-3", &format!("Route: <sip:{};lr>", other.addr())),
    );
    let (reply, _) = uac.recv();
    assert_eq!(first_line(&reply), "SIP/2.0 403 Relaying Forbidden");
    // ...while the route set this proxy record-routed is.
    uac.send(d.addr(), &bye("dialog-3", &ours));
    let (fwd, _) = other.recv();
    assert_eq!(header(&fwd, "Call-ID").as_deref(), Some("dialog-3"));
    assert!(!has_datagram(&other), "the forged BYE was relayed");
}
