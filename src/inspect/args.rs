//! `siptrace`'s command line, hand-written like the daemon's (src/cli.rs):
//! a subcommand, its operands and options, and the database options that
//! may stand anywhere. Pure: argv in, [`Invocation`] or [`ArgError`] out;
//! times stay text here (`when` reads them against the clock).

/// Printed by `-h`.
pub const USAGE: &str = "\
usage: siptrace [DB OPTIONS] COMMAND [ARGS]

Reads the sip_trace table siptraced writes (read-only).

commands:
  calls [--since T] [--until T] [--user U] [--ip ADDR] [--method M]
        [--status S] [--callid ID] [--limit N] [--json] [--pcap FILE [--pcapng]]
                    one line per call, newest first
  show CALLID... [--format text|json|svg|html] [-o FILE]
                    the call as a ladder diagram
  pcap CALLID... -o FILE [--pcapng]
                    the stored messages as a capture file (Wireshark, sngrep -I)
  serve [--listen ADDR:PORT] [--auth FILE]
                    web pages: search, ladder, message text, pcap download, live
                    view, and a JSON API (default 127.0.0.1:8460; outside
                    127.0.0.0/8 and ::1 only with --auth FILE of user:bcrypt lines)
  serve --hash-password USER
                    read a password on stdin, print USER:HASH for --auth FILE

database (default: db_url and table of -f FILE, else of /etc/siptraced/siptraced.cfg):
  --db URL          sqlite:///path.db, postgres://user@host/db, mysql://user@host/db,
                    text:///dir
  --table NAME      table name (default sip_trace, or the config's)
  -f FILE           take db_url and table from this siptraced configuration

T is a duration back from now (90s, 15m, 2h, 3d, 1w) or a local time
YYYY-MM-DD[ HH:MM[:SS]]. --user matches traced_user and the From or To user;
--ip matches fromip or toip (ADDR or ADDR:PORT); --status takes 486 or 4xx.
  -h, --help        this text
  -V, --version     version
";

/// Where the rows come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbArgs {
    pub db: Option<String>,
    pub table: Option<String>,
    pub cfg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsArgs {
    pub since: Option<String>,
    pub until: Option<String>,
    pub user: Option<String>,
    pub ip: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
    pub callid: Option<String>,
    pub limit: usize,
    pub json: bool,
    pub pcap: Option<String>,
    pub pcapng: bool,
}

/// `show`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Svg,
    Html,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Calls(CallsArgs),
    Show {
        callids: Vec<String>,
        format: Format,
        out: Option<String>,
    },
    Pcap {
        callids: Vec<String>,
        out: String,
        pcapng: bool,
    },
    Serve(ServeArgs),
    /// `serve --hash-password USER`: a line for the `--auth` file.
    HashPassword(String),
    Help,
    Version,
}

/// Where `serve` listens and who may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeArgs {
    pub listen: std::net::SocketAddr,
    pub auth: Option<String>,
}

/// `serve`'s address when none is given: this host only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8460";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub db: DbArgs,
    pub command: Command,
}

/// What is wrong with the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("no command given: calls, show, pcap or serve (see siptrace -h)")]
    NoCommand,
    #[error("unknown command {0:?}: calls, show, pcap or serve (see siptrace -h)")]
    UnknownCommand(String),
    #[error("option {0} needs a value (see siptrace -h)")]
    MissingValue(String),
    #[error("unknown option {opt} for {cmd} (see siptrace -h)")]
    UnknownOption { cmd: &'static str, opt: String },
    #[error("{0} takes no operand {1:?}")]
    Operand(&'static str, String),
    #[error("{0} needs at least one Call-ID")]
    NoCallId(&'static str),
    #[error("pcap needs -o FILE (the capture is binary)")]
    NoOutput,
    #[error("--limit {0:?} is not a positive number")]
    BadLimit(String),
    #[error("--format {0:?}: use text, json, svg or html")]
    BadFormat(String),
    #[error("--pcapng goes with --pcap FILE")]
    PcapngAlone,
    #[error("--listen {0:?} is not ADDR:PORT (e.g. 127.0.0.1:8460 or [::1]:8460)")]
    BadListen(String),
}

/// Parse the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Invocation, ArgError> {
    let mut it = argv.into_iter();
    let mut db = DbArgs::default();
    let mut cmd: Option<&'static str> = None;
    let mut operands: Vec<String> = Vec::new();
    let mut opts: Vec<(String, Option<String>)> = Vec::new();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| ArgError::MissingValue(name.to_string()))
        };
        // `--opt=value` is accepted too.
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut take = |n: &str| -> Result<String, ArgError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => value(n),
            }
        };
        match name.as_str() {
            "-h" | "--help" => {
                return Ok(Invocation {
                    db,
                    command: Command::Help,
                });
            }
            "-V" | "--version" => {
                return Ok(Invocation {
                    db,
                    command: Command::Version,
                });
            }
            "--db" => db.db = Some(take("--db")?),
            "--table" => db.table = Some(take("--table")?),
            "-f" => db.cfg = Some(take("-f")?),
            "--json" | "--pcapng" => opts.push((name, None)),
            n if n.starts_with('-') && n.len() > 1 => {
                let v = take(n)?;
                opts.push((name, Some(v)));
            }
            _ if cmd.is_none() => {
                cmd = Some(match a.as_str() {
                    "calls" => "calls",
                    "show" => "show",
                    "pcap" => "pcap",
                    "serve" => "serve",
                    _ => return Err(ArgError::UnknownCommand(a)),
                });
            }
            _ => operands.push(a),
        }
    }
    let command = match cmd.ok_or(ArgError::NoCommand)? {
        "calls" => {
            if let Some(o) = operands.into_iter().next() {
                return Err(ArgError::Operand("calls", o));
            }
            let mut c = CallsArgs {
                since: None,
                until: None,
                user: None,
                ip: None,
                method: None,
                status: None,
                callid: None,
                limit: 50,
                json: false,
                pcap: None,
                pcapng: false,
            };
            for (n, v) in opts {
                let v = v.unwrap_or_default();
                match n.as_str() {
                    "--since" => c.since = Some(v),
                    "--until" => c.until = Some(v),
                    "--user" => c.user = Some(v),
                    "--ip" => c.ip = Some(v),
                    "--method" => c.method = Some(v.to_ascii_uppercase()),
                    "--status" => c.status = Some(v),
                    "--callid" => c.callid = Some(v),
                    "--limit" => {
                        c.limit = v
                            .parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or(ArgError::BadLimit(v))?
                    }
                    "--json" => c.json = true,
                    "--pcap" => c.pcap = Some(v),
                    "--pcapng" => c.pcapng = true,
                    _ => {
                        return Err(ArgError::UnknownOption {
                            cmd: "calls",
                            opt: n,
                        });
                    }
                }
            }
            if c.pcapng && c.pcap.is_none() {
                return Err(ArgError::PcapngAlone);
            }
            Command::Calls(c)
        }
        "show" => {
            let mut format = Format::Text;
            let mut out = None;
            for (n, v) in opts {
                let v = v.unwrap_or_default();
                match n.as_str() {
                    "--format" => {
                        format = match v.as_str() {
                            "text" => Format::Text,
                            "json" => Format::Json,
                            "svg" => Format::Svg,
                            "html" => Format::Html,
                            _ => return Err(ArgError::BadFormat(v)),
                        }
                    }
                    "-o" | "--output" => out = Some(v),
                    _ => {
                        return Err(ArgError::UnknownOption {
                            cmd: "show",
                            opt: n,
                        });
                    }
                }
            }
            if operands.is_empty() {
                return Err(ArgError::NoCallId("show"));
            }
            Command::Show {
                callids: operands,
                format,
                out,
            }
        }
        "serve" => {
            if let Some(o) = operands.into_iter().next() {
                return Err(ArgError::Operand("serve", o));
            }
            let mut listen = DEFAULT_LISTEN.parse().expect("literal address");
            let mut auth = None;
            for (n, v) in opts {
                let v = v.unwrap_or_default();
                match n.as_str() {
                    "--listen" => listen = v.parse().map_err(|_| ArgError::BadListen(v))?,
                    "--auth" => auth = Some(v),
                    "--hash-password" => {
                        return Ok(Invocation {
                            db,
                            command: Command::HashPassword(v),
                        });
                    }
                    _ => {
                        return Err(ArgError::UnknownOption {
                            cmd: "serve",
                            opt: n,
                        });
                    }
                }
            }
            Command::Serve(ServeArgs { listen, auth })
        }
        _ => {
            let mut out = None;
            let mut pcapng = false;
            for (n, v) in opts {
                match n.as_str() {
                    "-o" | "--output" => out = v,
                    "--pcapng" => pcapng = true,
                    _ => {
                        return Err(ArgError::UnknownOption {
                            cmd: "pcap",
                            opt: n,
                        });
                    }
                }
            }
            if operands.is_empty() {
                return Err(ArgError::NoCallId("pcap"));
            }
            Command::Pcap {
                callids: operands,
                out: out.ok_or(ArgError::NoOutput)?,
                pcapng,
            }
        }
    };
    Ok(Invocation { db, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Invocation, ArgError> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn commands_and_options() {
        let i = p(
            "--db sqlite:///x.db calls --since 15m --user alice --limit 5 --json --method invite",
        )
        .unwrap();
        assert_eq!(i.db.db.as_deref(), Some("sqlite:///x.db"));
        let Command::Calls(c) = i.command else {
            panic!()
        };
        assert_eq!(c.since.as_deref(), Some("15m"));
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.method.as_deref(), Some("INVITE"));
        assert_eq!(c.limit, 5);
        assert!(c.json);
        let i = p("show a b --format=html -o f.html --table t2 -f /etc/x.cfg").unwrap();
        assert_eq!(i.db.table.as_deref(), Some("t2"));
        assert_eq!(i.db.cfg.as_deref(), Some("/etc/x.cfg"));
        assert_eq!(
            i.command,
            Command::Show {
                callids: vec!["a".into(), "b".into()],
                format: Format::Html,
                out: Some("f.html".into())
            }
        );
        assert_eq!(
            p("pcap c1 -o x.pcapng --pcapng").unwrap().command,
            Command::Pcap {
                callids: vec!["c1".into()],
                out: "x.pcapng".into(),
                pcapng: true
            }
        );
        assert_eq!(p("-h").unwrap().command, Command::Help);
        assert_eq!(
            p("serve --auth users").unwrap().command,
            Command::Serve(ServeArgs {
                listen: DEFAULT_LISTEN.parse().unwrap(),
                auth: Some("users".into())
            })
        );
        assert_eq!(
            p("serve --listen [::1]:9000").unwrap().command,
            Command::Serve(ServeArgs {
                listen: "[::1]:9000".parse().unwrap(),
                auth: None
            })
        );
        assert_eq!(
            p("serve --hash-password alice").unwrap().command,
            Command::HashPassword("alice".into())
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(p(""), Err(ArgError::NoCommand));
        assert_eq!(p("list"), Err(ArgError::UnknownCommand("list".into())));
        assert_eq!(p("pcap c1"), Err(ArgError::NoOutput));
        assert_eq!(p("show"), Err(ArgError::NoCallId("show")));
        assert_eq!(
            p("calls --since"),
            Err(ArgError::MissingValue("--since".into()))
        );
        assert_eq!(p("calls --limit 0"), Err(ArgError::BadLimit("0".into())));
        assert_eq!(
            p("show x --format pdf"),
            Err(ArgError::BadFormat("pdf".into()))
        );
        assert_eq!(p("calls x"), Err(ArgError::Operand("calls", "x".into())));
        assert_eq!(p("calls --pcapng"), Err(ArgError::PcapngAlone));
        assert_eq!(
            p("serve --listen localhost"),
            Err(ArgError::BadListen("localhost".into()))
        );
        assert!(matches!(
            p("calls --bogus 1"),
            Err(ArgError::UnknownOption { .. })
        ));
    }
}
