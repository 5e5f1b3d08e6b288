//! `db_url` parsing: which backend, and where. Pure: no I/O, no environment
//! (a relative SQLite path or dbtext directory stays relative; the OS resolves it
//! against the daemon's working directory when the file is opened — with `-D`
//! off the daemon chdirs to `/`, so use absolute paths in production).
//!
//! Accepted forms (scheme case-insensitive):
//! - `sqlite:///abs/path.db`, `sqlite://relative/path.db`
//! - `postgres://user[:password]@host[:port]/database`, also `postgresql://`
//! - `mysql://user[:password]@host[:port]/database`
//! - `text:///abs/dir`, `text://relative/dir`; Kamailio's `db_text://` and
//!   `dbtext://` are aliases.
//! - `unixodbc://[user[:password]@][host]/DSN` (Kamailio's db_unixodbc form;
//!   the host is ignored, the DSN names the data source), also `odbc://`;
//!   a "DSN" containing `=` is a complete ODBC connection string
//!   (`unixodbc:///Driver={PostgreSQL Unicode};Server=…;Database=…`).
//!
//! User, password and database may be percent-encoded (`%40` for `@`); a host
//! may be an IPv6 literal in brackets. Passwords never appear in messages:
//! [`DbUrl::redacted`] and [`UrlError`] print `***` instead.
//! Depends on std and sip's host:port grammar (one for the whole crate).

use crate::sip::{AddrError, HostPort};
use std::fmt;
use std::path::PathBuf;

/// Default ports: IANA assignments for postgresql (5432) and mysql (3306).
const POSTGRES_PORT: u16 = 5432;
const MYSQL_PORT: u16 = 3306;

/// A parsed `db_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite { path: PathBuf },
    Postgres(ServerUrl),
    Mysql(ServerUrl),
    Text { dir: PathBuf },
    Odbc(OdbcUrl),
}

/// A `unixodbc://` URL: a data source name (or connection string) and the
/// optional credentials to add to it.
#[derive(Clone, PartialEq, Eq)]
pub struct OdbcUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    /// DSN from odbc.ini, or a whole connection string (it contains `=`).
    pub dsn: String,
}

impl fmt::Debug for OdbcUrl {
    // Hand-written so that `{:?}` never leaks the password into a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OdbcUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dsn", &redact_pwd(&self.dsn))
            .finish()
    }
}

impl OdbcUrl {
    /// The connection string for the driver manager: the DSN (or the given
    /// string) plus UID/PWD. A value with `;`, `=`, braces or edge spaces is
    /// put in braces (`}` doubled) so that it cannot add attributes of its
    /// own; other values stay bare, because some drivers (psqlODBC) keep
    /// the braces of a plain value as part of it.
    pub fn connection_string(&self) -> String {
        let braced = |v: &str| {
            let special = v.contains([';', '=', '{', '}']) || v.trim() != v;
            if special {
                format!("{{{}}}", v.replace('}', "}}"))
            } else {
                v.to_string()
            }
        };
        let mut cs = if self.dsn.contains('=') {
            let mut s = self.dsn.clone();
            if !s.ends_with(';') {
                s.push(';');
            }
            s
        } else {
            format!("DSN={};", braced(&self.dsn))
        };
        if let Some(u) = &self.user {
            cs.push_str(&format!("UID={};", braced(u)));
        }
        if let Some(p) = &self.password {
            cs.push_str(&format!("PWD={};", braced(p)));
        }
        cs
    }

    /// `user@DSN` (or the connection string with any PWD value hidden).
    pub fn display_target(&self) -> String {
        let dsn = redact_pwd(&self.dsn);
        match &self.user {
            Some(u) => format!("{u}@{dsn}"),
            None => dsn,
        }
    }
}

/// A connection string with the value of any `PWD=` attribute replaced by `***`.
fn redact_pwd(cs: &str) -> String {
    cs.split(';')
        .map(|attr| match attr.split_once('=') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case("pwd") => format!("{k}=***"),
            _ => attr.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The network part of a postgres or mysql URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub user: String,
    pub password: Option<String>,
    /// Host name or IP literal, brackets removed.
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl fmt::Debug for ServerUrl {
    // Hand-written so that `{:?}` never leaks the password into a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

impl ServerUrl {
    /// `user@host:port/database`, password left out; IPv6 hosts in brackets.
    pub(crate) fn display_target(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}@{}:{}/{}", self.user, host, self.port, self.database)
    }
}

impl DbUrl {
    /// The URL for messages and logs, with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite { path } => format!("sqlite:{}", path.display()),
            DbUrl::Text { dir } => format!("text:{}", dir.display()),
            DbUrl::Postgres(s) => format!("postgres://{}", s.display_target()),
            DbUrl::Mysql(s) => format!("mysql://{}", s.display_target()),
            DbUrl::Odbc(o) => format!("unixodbc://{}", o.display_target()),
        }
    }
}

/// Which part of the URL is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    Scheme,
    Path,
    User,
    Host,
    Port,
    Database,
    Options,
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlPart::Scheme => "scheme",
            UrlPart::Path => "path",
            UrlPart::User => "user name",
            UrlPart::Host => "host",
            UrlPart::Port => "port",
            UrlPart::Database => "database name",
            UrlPart::Options => "options",
        })
    }
}

/// A `db_url` that cannot be used, naming the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// The URL as given, password replaced by `***`.
    pub url: String,
    pub part: UrlPart,
    pub problem: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "db_url '{}': bad {}: {}",
            self.url, self.part, self.problem
        )
    }
}

impl std::error::Error for UrlError {}

/// Replace the password of `scheme://user:password@…` with `***`, for messages.
fn redact_raw(url: &str) -> String {
    let Some(sep) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[sep + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}://{}:***{}",
            &url[..sep],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// Parse a `db_url`.
pub fn parse(url: &str) -> Result<DbUrl, UrlError> {
    let err = |part, problem| UrlError {
        url: redact_raw(url),
        part,
        problem,
    };
    let Some(sep) = url.find("://") else {
        return Err(err(
            UrlPart::Scheme,
            "expected SCHEME://…, with SCHEME one of sqlite, postgres, postgresql, mysql, text, db_text, unixodbc",
        ));
    };
    let scheme = url[..sep].to_ascii_lowercase();
    let rest = &url[sep + 3..];
    match scheme.as_str() {
        "sqlite" => parse_path(rest)
            .map(|path| DbUrl::Sqlite { path })
            .map_err(|p| err(UrlPart::Path, p)),
        "text" | "db_text" | "dbtext" => parse_path(rest)
            .map(|dir| DbUrl::Text { dir })
            .map_err(|p| err(UrlPart::Path, p)),
        "postgres" | "postgresql" => parse_server(rest, POSTGRES_PORT)
            .map(DbUrl::Postgres)
            .map_err(|(part, p)| err(part, p)),
        "mysql" => parse_server(rest, MYSQL_PORT)
            .map(DbUrl::Mysql)
            .map_err(|(part, p)| err(part, p)),
        "unixodbc" | "odbc" => parse_odbc(rest)
            .map(DbUrl::Odbc)
            .map_err(|(part, p)| err(part, p)),
        _ => Err(err(
            UrlPart::Scheme,
            "unknown scheme; use sqlite, postgres, postgresql, mysql, text, db_text or unixodbc",
        )),
    }
}

fn parse_odbc(rest: &str) -> Result<OdbcUrl, (UrlPart, &'static str)> {
    let Some(slash) = rest.find('/') else {
        return Err((UrlPart::Database, "missing /DSN after the host"));
    };
    let (authority, dsn) = (&rest[..slash], &rest[slash + 1..]);
    let dsn = percent_decode(dsn).ok_or((UrlPart::Database, "bad %-escape"))?;
    if dsn.trim().is_empty() {
        return Err((
            UrlPart::Database,
            "missing data source name after the last '/'",
        ));
    }
    if dsn.contains('\0') {
        return Err((UrlPart::Database, "contains a NUL byte"));
    }
    let (user, password) = match authority.rfind('@') {
        None => (None, None),
        Some(at) => match authority[..at].split_once(':') {
            Some((u, p)) => (
                Some(percent_decode(u).ok_or((UrlPart::User, "bad %-escape"))?),
                Some(percent_decode(p).ok_or((UrlPart::User, "bad %-escape in the password"))?),
            ),
            None => (
                Some(percent_decode(&authority[..at]).ok_or((UrlPart::User, "bad %-escape"))?),
                None,
            ),
        },
    };
    if user.as_deref() == Some("") {
        return Err((UrlPart::User, "empty user name"));
    }
    Ok(OdbcUrl {
        user,
        password,
        dsn,
    })
}

/// The path after `scheme://`: `/abs` stays absolute, anything else is relative.
fn parse_path(rest: &str) -> Result<PathBuf, &'static str> {
    if rest.is_empty() || rest == "/" {
        return Err("empty path; write sqlite:///absolute/file.db or sqlite://relative/file.db");
    }
    if rest.contains('\0') {
        return Err("path contains a NUL byte");
    }
    Ok(PathBuf::from(rest))
}

fn parse_server(rest: &str, default_port: u16) -> Result<ServerUrl, (UrlPart, &'static str)> {
    if rest.contains('?') || rest.contains('#') {
        return Err((
            UrlPart::Options,
            "query options (?…) are not supported; timeouts come from the configuration",
        ));
    }
    let Some(slash) = rest.find('/') else {
        return Err((UrlPart::Database, "missing /DATABASE after the host"));
    };
    let (authority, db) = (&rest[..slash], &rest[slash + 1..]);
    let database = percent_decode(db).ok_or((UrlPart::Database, "bad %-escape"))?;
    if database.is_empty() {
        return Err((
            UrlPart::Database,
            "missing database name after the last '/'",
        ));
    }
    if database.contains('/') {
        return Err((UrlPart::Database, "database name contains '/'"));
    }
    let Some(at) = authority.rfind('@') else {
        return Err((UrlPart::User, "missing USER@ before the host"));
    };
    let (userinfo, hostport) = (&authority[..at], &authority[at + 1..]);
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (
            u,
            Some(percent_decode(p).ok_or((UrlPart::User, "bad %-escape in the password"))?),
        ),
        None => (userinfo, None),
    };
    let user = percent_decode(user).ok_or((UrlPart::User, "bad %-escape"))?;
    if user.is_empty() {
        return Err((UrlPart::User, "empty user name"));
    }
    let hp = HostPort::parse(hostport).map_err(|e| match e {
        AddrError::BadPort(_) => (UrlPart::Port, "not a number in 1..65535"),
        AddrError::EmptyHost => (UrlPart::Host, "empty host"),
        AddrError::UnbracketedIpv6 => (
            UrlPart::Host,
            "IPv6 addresses must be written in brackets, e.g. [::1]",
        ),
        AddrError::BadIpv6(_) => (
            UrlPart::Host,
            "not an IPv6 address inside [ ], or text after ']'",
        ),
        _ => (
            UrlPart::Host,
            "host contains characters outside [A-Za-z0-9.-_]",
        ),
    })?;
    let host = hp.host.unbracketed();
    let port = hp.port.unwrap_or(default_port);
    Ok(ServerUrl {
        user,
        password,
        host,
        port,
        database,
    })
}

/// `%XX` decoding; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(user: &str, pw: Option<&str>, host: &str, port: u16, db: &str) -> ServerUrl {
        ServerUrl {
            user: user.into(),
            password: pw.map(Into::into),
            host: host.into(),
            port,
            database: db.into(),
        }
    }

    #[test]
    fn odbc_urls() {
        let odbc = |user: Option<&str>, pw: Option<&str>, dsn: &str| {
            DbUrl::Odbc(OdbcUrl {
                user: user.map(String::from),
                password: pw.map(String::from),
                dsn: dsn.into(),
            })
        };
        let cases: Vec<(&str, DbUrl, &str)> = vec![
            (
                "unixodbc://kamailio:kamailiorw@localhost/my_dsn",
                odbc(Some("kamailio"), Some("kamailiorw"), "my_dsn"),
                "DSN=my_dsn;UID=kamailio;PWD=kamailiorw;",
            ),
            ("odbc:///trace", odbc(None, None, "trace"), "DSN=trace;"),
            (
                "unixodbc://u:p%7Dx;PWD=y@h/d",
                odbc(Some("u"), Some("p}x;PWD=y"), "d"),
                "DSN=d;UID=u;PWD={p}}x;PWD=y};",
            ),
            (
                "unixodbc://root@/Driver={MariaDB Unicode};Server=127.0.0.1;Database=k",
                odbc(
                    Some("root"),
                    None,
                    "Driver={MariaDB Unicode};Server=127.0.0.1;Database=k",
                ),
                "Driver={MariaDB Unicode};Server=127.0.0.1;Database=k;UID=root;",
            ),
        ];
        for (url, want, cs) in cases {
            let got = parse(url).unwrap();
            assert_eq!(got, want, "{url}");
            let DbUrl::Odbc(o) = got else { unreachable!() };
            assert_eq!(o.connection_string(), cs, "{url}");
        }
        for bad in ["unixodbc://h", "unixodbc://h/", "odbc://:pw@h/d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let o = parse("unixodbc:///Driver=x;Uid=a;PWD=secret").unwrap();
        assert!(!o.redacted().contains("secret"), "{}", o.redacted());
        assert!(!format!("{o:?}").contains("secret"));
        let o = parse("unixodbc://a:secret@h/d").unwrap();
        assert_eq!(o.redacted(), "unixodbc://a@d");
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn parses_good_urls() {
        let cases: Vec<(&str, DbUrl)> = vec![
            (
                "sqlite:///var/lib/t.db",
                DbUrl::Sqlite {
                    path: "/var/lib/t.db".into(),
                },
            ),
            (
                "SQLITE://rel/t.db",
                DbUrl::Sqlite {
                    path: "rel/t.db".into(),
                },
            ),
            (
                "text:///tmp/dbt",
                DbUrl::Text {
                    dir: "/tmp/dbt".into(),
                },
            ),
            ("db_text://dbt", DbUrl::Text { dir: "dbt".into() }),
            ("dbtext:///d", DbUrl::Text { dir: "/d".into() }),
            (
                "postgres://kam:pw@127.0.0.1/kamailio",
                DbUrl::Postgres(srv("kam", Some("pw"), "127.0.0.1", 5432, "kamailio")),
            ),
            (
                "postgresql://kam@db.example:6543/k",
                DbUrl::Postgres(srv("kam", None, "db.example", 6543, "k")),
            ),
            (
                "mysql://root@[::1]:3307/siptrace",
                DbUrl::Mysql(srv("root", None, "::1", 3307, "siptrace")),
            ),
            (
                "mysql://u:p%40ss:w@localhost/d%2Db",
                DbUrl::Mysql(srv("u", Some("p@ss:w"), "localhost", 3306, "d-b")),
            ),
            (
                "mysql://u:a@b@h/d",
                DbUrl::Mysql(srv("u", Some("a@b"), "h", 3306, "d")),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn rejects_bad_urls_naming_the_part() {
        let cases = [
            ("/tmp/x.db", UrlPart::Scheme),
            ("oracle://u@h/d", UrlPart::Scheme),
            ("sqlite://", UrlPart::Path),
            ("sqlite:///", UrlPart::Path),
            ("postgres://u@h", UrlPart::Database),
            ("postgres://u@h/", UrlPart::Database),
            ("postgres://h/d", UrlPart::User),
            ("postgres://:pw@h/d", UrlPart::User),
            ("postgres://u@/d", UrlPart::Host),
            ("postgres://u@::1/d", UrlPart::Host),
            ("postgres://u@[::1/d", UrlPart::Host),
            ("postgres://u@[zz]/d", UrlPart::Host),
            ("postgres://u@h o/d", UrlPart::Host),
            ("postgres://u@h:0/d", UrlPart::Port),
            ("postgres://u@h:99999/d", UrlPart::Port),
            ("postgres://u@h:x/d", UrlPart::Port),
            ("mysql://u@h/d?ssl=1", UrlPart::Options),
            ("mysql://u%zz@h/d", UrlPart::User),
            ("mysql://u@h/a%2fb", UrlPart::Database),
        ];
        for (url, part) in cases {
            let e = parse(url).expect_err(url);
            assert_eq!(e.part, part, "{url}: {e}");
        }
    }

    #[test]
    fn passwords_never_shown() {
        let e = parse("postgres://u:secret@h:x/d").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("u:***@h:x/d"), "{e}");
        let u = parse("mysql://u:secret@[::1]/d").unwrap();
        assert_eq!(u.redacted(), "mysql://u@[::1]:3306/d");
        assert!(!format!("{u:?}").contains("secret"));
    }
}
