//! Matching keys for transactions (RFC 3261 §17.1.3 and §17.2.3), built by
//! the caller from a parsed message.
//!
//! The transaction layer never parses SIP: the proxy core extracts these few
//! fields and hands them in with the opaque message bytes. Fields are
//! compared exactly as given, so the caller normalises them first (sent-by
//! host in lower case with its port made explicit, tags and Call-ID as they
//! appear). Depends on nothing but std.

/// The RFC 3261 branch magic cookie (§8.1.1.7): a top Via branch starting
/// with it is matched by branch and sent-by; any other by the RFC 2543 rules.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A request method, as far as the transaction layer cares.
///
/// Methods are case-sensitive (RFC 3261 §7.1): `invite` is an extension
/// method, not INVITE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Cancel,
    /// Any other method (BYE, OPTIONS, REGISTER, extensions…).
    Other(String),
}

impl Method {
    /// Method from its token as it appears on the request line or in CSeq.
    pub(crate) fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Other(token) => token,
        }
    }

    /// The method of the server transaction a request of this method belongs
    /// to: an ACK belongs to the INVITE it acknowledges (§17.2.3); CANCEL is a
    /// transaction of its own.
    pub(crate) fn transaction_method(&self) -> &Method {
        match self {
            Method::Ack => &Method::Invite,
            other => other,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §17.2.3 key of a request whose top Via branch carries the magic
/// cookie.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// The top Via `branch` parameter, cookie included.
    pub branch: String,
    /// The top Via sent-by (`host[:port]`), normalised by the caller.
    pub sent_by: String,
    /// The request method (ACK matches the INVITE, §17.2.3).
    pub method: Method,
}

/// RFC 3261 §17.2.3 (last paragraphs) fallback key for requests from RFC 2543
/// elements, whose branch lacks the magic cookie.
///
/// An INVITE or non-INVITE request matches on every field; a CANCEL matches
/// its INVITE on every field but the method; an ACK matches its INVITE on
/// every field but the To tag (the RFC wants it compared with the To tag of
/// the reply sent, which this layer does not parse; see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LegacyKey {
    pub request_uri: String,
    pub to_tag: Option<String>,
    pub from_tag: Option<String>,
    pub call_id: String,
    pub cseq_num: u32,
    /// The whole top Via header field value, normalised by the caller.
    pub top_via: String,
    /// The request method (equal to the CSeq method for a valid request).
    pub method: Method,
}

/// The key a received request is matched with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestKey {
    Rfc3261(ServerKey),
    Rfc2543(LegacyKey),
}

impl RequestKey {
    /// Whether a top Via branch calls for [`RequestKey::Rfc3261`] matching.
    pub(crate) fn is_rfc3261_branch(branch: Option<&str>) -> bool {
        branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    pub fn method(&self) -> &Method {
        match self {
            RequestKey::Rfc3261(k) => &k.method,
            RequestKey::Rfc2543(k) => &k.method,
        }
    }
}

/// RFC 3261 §17.1.3 key of a response: the top Via branch (the one this
/// proxy put in the forwarded request) and the CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: Method,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_tokens() {
        let cases = [
            ("INVITE", Method::Invite),
            ("ACK", Method::Ack),
            ("CANCEL", Method::Cancel),
            ("BYE", Method::Other("BYE".into())),
            ("invite", Method::Other("invite".into())),
        ];
        for (token, want) in cases {
            let got = Method::from_token(token);
            assert_eq!(got, want, "{token}");
            assert_eq!(got.as_str(), token);
        }
    }

    #[test]
    fn cookie() {
        let cases = [
            (Some("z9hG4bK776asdhds"), true),
            (Some("z9hg4bk776"), false),
            (Some("776asdhds"), false),
            (None, false),
        ];
        for (branch, want) in cases {
            assert_eq!(RequestKey::is_rfc3261_branch(branch), want, "{branch:?}");
        }
    }
}
