//! siptrace: find a call in the sip_trace table, draw it, export it.
//!
//! Thin entry point over `siptraced::inspect`: arguments → which table
//! (`--db`/`--table`, else the siptraced configuration's db_url/table) →
//! one command. Read-only. Exit codes: 0 done, 1 no matching call (said
//! on stderr), 2 usage error, 3 configuration, database or output error.

use std::io::Write;
use std::process::ExitCode;

use siptraced::clock::WallTime;
use siptraced::inspect::args::{self, CallsArgs, Command, DbArgs, Format};
use siptraced::inspect::call::{CallSummary, Filter, format_duration};
use siptraced::inspect::source::Source;
use siptraced::inspect::when::{End, parse_when};
use siptraced::inspect::{StoredRow, ladder, pcap, svg, web};

/// A failure with the exit code it earns.
struct Fail(u8, String);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("siptrace: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<(), Fail> {
    let inv = args::parse(std::env::args().skip(1)).map_err(|e| Fail(2, e.to_string()))?;
    match inv.command {
        Command::Help => {
            print!("{}", args::USAGE);
            return Ok(());
        }
        Command::Version => {
            println!("siptrace {}", siptraced::VERSION);
            return Ok(());
        }
        Command::HashPassword(user) => return hash_password(&user),
        _ => {}
    }
    let (url, table) = database(&inv.db)?;
    if let Command::Serve(s) = &inv.command {
        let conf = web::Config {
            listen: s.listen,
            auth: s.auth.clone().map(std::path::PathBuf::from),
            db_url: url,
            table,
        };
        return web::serve(conf).map_err(|e| Fail(e.exit_code(), e.to_string()));
    }
    let mut src = Source::open(&url, &table).map_err(|e| Fail(3, e.to_string()))?;
    if !src.has_time_us() {
        eprintln!(
            "siptrace: {} has no time_us column: times are to the second",
            src.describe()
        );
    }
    match inv.command {
        Command::Calls(c) => calls(&mut src, &c),
        Command::Show {
            callids,
            format,
            out,
        } => {
            let rows = rows_of(&mut src, &callids)?;
            let l = ladder::build(&rows);
            let text = match format {
                Format::Text => ladder::render_text(&l, &rows),
                Format::Json => ladder::render_json(&l, &rows),
                Format::Svg => svg::render_svg(&l, &rows),
                Format::Html => svg::render_html(&l, &rows),
            };
            write_out(out.as_deref(), text.as_bytes())
        }
        Command::Pcap {
            callids,
            out,
            pcapng,
        } => {
            let rows = rows_of(&mut src, &callids)?;
            write_pcap(&rows, &out, pcapng)
        }
        Command::Help | Command::Version | Command::Serve(_) | Command::HashPassword(_) => Ok(()),
    }
}

/// `serve --hash-password USER`: the password from stdin's first line.
fn hash_password(user: &str) -> Result<(), Fail> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Fail(3, format!("cannot read the password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    let entry = web::auth::entry(user, pw).map_err(|e| Fail(2, e.to_string()))?;
    println!("{entry}");
    Ok(())
}

/// `--db`/`--table`, else the `-f` configuration's, else the default one's.
fn database(a: &DbArgs) -> Result<(String, String), Fail> {
    if let (Some(db), None) = (&a.db, &a.cfg) {
        return Ok((
            db.clone(),
            a.table.clone().unwrap_or_else(|| "sip_trace".into()),
        ));
    }
    let path = a
        .cfg
        .clone()
        .unwrap_or_else(|| siptraced::cli::DEFAULT_CFG.to_string());
    let loaded = siptraced::cfg::load_file(std::path::Path::new(&path), &[])
        .and_then(|ast| siptraced::config::build(&ast));
    let conf = match loaded {
        Ok((conf, _)) => conf,
        Err(diags) => {
            let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
            let hint = if a.cfg.is_none() {
                " (give --db URL, or -f FILE)"
            } else {
                ""
            };
            return Err(Fail(
                3,
                format!("cannot take db_url from {path}: {first}{hint}"),
            ));
        }
    };
    let p = conf.siptrace.unwrap_or_default();
    Ok((
        a.db.clone().unwrap_or(p.db_url),
        a.table.clone().unwrap_or(p.table),
    ))
}

fn rows_of(src: &mut Source, callids: &[String]) -> Result<Vec<StoredRow>, Fail> {
    let rows = src.rows_of(callids).map_err(|e| Fail(3, e.to_string()))?;
    let missing: Vec<&str> = callids
        .iter()
        .filter(|c| !rows.iter().any(|r| &r.callid == *c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Fail(
            1,
            format!(
                "no rows with Call-ID {} in {}",
                missing.join(", "),
                src.describe()
            ),
        ));
    }
    Ok(rows)
}

fn calls(src: &mut Source, c: &CallsArgs) -> Result<(), Fail> {
    let now = WallTime::now().sec;
    let when = |v: &Option<String>, end| {
        v.as_deref()
            .map(|s| parse_when(s, end, now))
            .transpose()
            .map_err(|e| Fail(2, e.to_string()))
    };
    let f = Filter {
        since: when(&c.since, End::Since)?,
        until: when(&c.until, End::Until)?,
        user: c.user.clone(),
        ip: c.ip.clone(),
        method: c.method.clone(),
        status: c.status.clone(),
        callid: c.callid.clone(),
    };
    let groups = src
        .matching_calls(&f, c.limit)
        .map_err(|e| Fail(3, e.to_string()))?;
    let mut found: Vec<(CallSummary, &Vec<StoredRow>)> = groups
        .iter()
        .filter_map(|g| siptraced::inspect::call::summarize(g).map(|s| (s, g)))
        .collect();
    found.sort_by(|a, b| {
        b.0.start_time_us
            .cmp(&a.0.start_time_us)
            .then(a.0.callid.cmp(&b.0.callid))
    });
    if let Some(path) = &c.pcap {
        let rows: Vec<StoredRow> = found.iter().flat_map(|(_, g)| g.iter().cloned()).collect();
        let mut rows = rows;
        rows.sort_by_key(|r| (r.time_us(), r.id));
        write_pcap(&rows, path, c.pcapng)?;
    }
    let summaries: Vec<CallSummary> = found.into_iter().map(|(s, _)| s).collect();
    let text = if c.json {
        calls_json(&summaries)
    } else {
        calls_text(&summaries)
    };
    write_out(None, text.as_bytes())?;
    if summaries.is_empty() {
        return Err(Fail(1, format!("no call matches in {}", src.describe())));
    }
    Ok(())
}

fn start_text(s: &CallSummary) -> String {
    match s.start_us {
        Some(us) => format!("{}.{:03}", s.start, us / 1000),
        None => s.start.clone(),
    }
}

fn calls_text(list: &[CallSummary]) -> String {
    let mut out = format!(
        "{:<23} {:>8} {:>4} {:<9} {:<6} {:<27} {}\n",
        "START", "DURATION", "ROWS", "METHOD", "STATUS", "FROM -> TO", "CALL-ID"
    );
    for s in list {
        let mut parties = format!("{} -> {}", s.from_user, s.to_user);
        if parties.chars().count() > 27 {
            parties = parties.chars().take(26).collect::<String>() + "~";
        }
        out.push_str(&format!(
            "{:<23} {:>8} {:>4} {:<9} {:<6} {:<27} {}\n",
            start_text(s),
            format_duration(s.duration_us),
            s.rows,
            s.first_method,
            if s.final_status.is_empty() {
                "-"
            } else {
                &s.final_status
            },
            parties,
            s.callid
        ));
    }
    out
}

fn calls_json(list: &[CallSummary]) -> String {
    siptraced::inspect::call::summaries_json(list).pretty()
}

fn write_pcap(rows: &[StoredRow], path: &str, ng: bool) -> Result<(), Fail> {
    let (bytes, unknown) = pcap::capture(rows, ng);
    for u in &unknown {
        eprintln!("siptrace: {u:?} is not proto:ip:port; written as 0.0.0.0:5060");
    }
    write_out(Some(path), &bytes)
}

fn write_out(path: Option<&str>, bytes: &[u8]) -> Result<(), Fail> {
    match path {
        Some(p) if p != "-" => {
            std::fs::write(p, bytes).map_err(|e| Fail(3, format!("cannot write {p}: {e}")))
        }
        _ => {
            let mut so = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = so.write_all(bytes);
            let _ = so.flush();
            Ok(())
        }
    }
}
