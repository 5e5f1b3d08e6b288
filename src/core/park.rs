//! Requests waiting for a name: the work left after the script ran, kept
//! until the resolver answers or gives up (resolve.rs), so the script is
//! never run twice and no row is written twice.
//!
//! Bounded in count and bytes ([`ParkLimits`], docs/decisions.md §10): a
//! request that cannot be parked is refused by the caller (503, traced)
//! and counted in `full`.

use super::resolve::Query;
use crate::script::MsgState;
use crate::sip::SipMsg;
use crate::tsx::TxId;
use std::collections::HashMap;

/// Caps of the park.
#[derive(Debug, Clone)]
pub struct ParkLimits {
    pub max_requests: usize,
    pub max_bytes: usize,
}

impl Default for ParkLimits {
    fn default() -> Self {
        ParkLimits {
            max_requests: 1024,
            max_bytes: 4 << 20,
        }
    }
}

/// What is left to do once the address is known.
#[derive(Debug)]
pub(crate) enum Work {
    /// A stateless `forward()`: the request as the script left it (our
    /// Via is pushed at send time: it names the socket, which depends on
    /// the address family), received on `li`, with the script state its
    /// trace rows and reply memory use.
    Stateless {
        li: usize,
        msg: SipMsg,
        st: MsgState,
    },
    /// A `t_relay()` branch of transaction `tx`: the request as the script
    /// left it; the transaction holds the script state.
    Branch { tx: TxId, li: usize, msg: SipMsg },
}

#[derive(Debug)]
pub(crate) struct Parked {
    /// The port of the next hop, when it had one (an A/AAAA query's
    /// answer carries none).
    pub port: Option<u16>,
    /// The transport the next hop is reached over.
    pub proto: crate::sip::Transport,
    pub work: Work,
    bytes: usize,
}

impl Parked {
    pub fn new(port: Option<u16>, proto: crate::sip::Transport, work: Work) -> Parked {
        let bytes = match &work {
            Work::Stateless { msg, st, .. } => msg.as_bytes().len() + st.approx_bytes(),
            Work::Branch { msg, .. } => msg.as_bytes().len(),
        } + 256;
        Parked {
            port,
            proto,
            work,
            bytes,
        }
    }
}

/// The park had no room: the caller answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParkFull;

#[derive(Debug, Default)]
pub(crate) struct Park {
    limits: ParkLimits,
    by_query: HashMap<Query, Vec<Parked>>,
    count: usize,
    bytes: usize,
    /// Requests refused because the park was full.
    pub full: u64,
}

impl Park {
    pub fn new(limits: ParkLimits) -> Park {
        Park {
            limits,
            ..Park::default()
        }
    }

    /// Parks `p` under `q`, or drops it when the park is full.
    pub fn park(&mut self, q: Query, p: Parked) -> Result<(), ParkFull> {
        if self.count + 1 > self.limits.max_requests || self.bytes + p.bytes > self.limits.max_bytes
        {
            self.full += 1;
            return Err(ParkFull);
        }
        self.count += 1;
        self.bytes += p.bytes;
        self.by_query.entry(q).or_default().push(p);
        Ok(())
    }

    /// Everything parked under `q`, in arrival order.
    pub fn take(&mut self, q: &Query) -> Vec<Parked> {
        let v = self.by_query.remove(q).unwrap_or_default();
        self.count -= v.len();
        self.bytes -= v.iter().map(|p| p.bytes).sum::<usize>();
        v
    }

    pub fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize) -> Parked {
        let raw = format!(
            "OPTIONS sip:x@h.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{n}\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:x@h.example>\r\nCall-ID: {n}\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Parked::new(
            Some(5060),
            crate::sip::Transport::Udp,
            Work::Stateless {
                li: 0,
                msg: SipMsg::parse(raw.as_bytes()).unwrap(),
                st: MsgState::default(),
            },
        )
    }

    #[test]
    fn count_and_bytes_are_capped() {
        let q = |n: &str| Query {
            name: n.into(),
            srv: false,
        };
        let mut p = Park::new(ParkLimits {
            max_requests: 2,
            max_bytes: 1 << 20,
        });
        assert!(p.park(q("a"), req(1)).is_ok());
        assert!(p.park(q("b"), req(2)).is_ok());
        assert!(p.park(q("a"), req(3)).is_err());
        assert_eq!(p.full, 1);
        assert_eq!(p.take(&q("a")).len(), 1);
        assert_eq!(p.len(), 1);
        assert!(p.park(q("a"), req(3)).is_ok());

        let mut small = Park::new(ParkLimits {
            max_requests: 100,
            max_bytes: 700,
        });
        assert!(small.park(q("a"), req(1)).is_ok());
        assert!(small.park(q("a"), req(2)).is_err());
        assert_eq!(small.full, 1);
    }
}
