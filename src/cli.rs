//! Command line, shaped like kamailio's own (`-f -c -D -E -P -u -g -A -V -h`).
//!
//! Pure: turns argv into an `Args` value or a `CliError`; it never touches
//! the file system or the process. main.rs decides what to do with it.

use std::fmt;

pub const DEFAULT_CFG: &str = "/etc/siptraced/siptraced.cfg";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub cfg_file: String,
    /// `-c`: parse and check the config, print every diagnostic, exit.
    pub check_only: bool,
    /// `-D`: stay in the foreground (kamailio also accepts `-DD`).
    pub foreground: bool,
    /// `-E`: log to stderr instead of syslog.
    pub log_stderr: bool,
    pub pid_file: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `-A NAME[=value]`: like `#!define` at the top of the config.
    pub defines: Vec<(String, Option<String>)>,
    /// `-d` given N times raises the config's `debug` by N (kamailio does the same).
    pub debug_bumps: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    MissingValue(String),
    Unknown(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::MissingValue(o) => write!(f, "option {o} needs a value (see -h)"),
            CliError::Unknown(o) => write!(f, "unknown option {o} (see -h)"),
        }
    }
}

pub const USAGE: &str = "\
Usage: siptraced [options]
  -f FILE      configuration file (default /etc/siptraced/siptraced.cfg)
  -c           check the configuration file and exit (errors as file:line:col)
  -D           do not daemonise: stay in the foreground
  -E           log to stderr
  -P FILE      write the process id to FILE
  -u USER      drop privileges to USER after binding sockets and creating FIFOs
  -g GROUP     drop privileges to GROUP
  -A NAME[=V]  define NAME (as #!define NAME V) for the configuration file
  -d           raise the debug level by one (may be repeated)
  -V           print version and exit
  -h           print this help and exit
";

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Command, CliError> {
    let mut args = Args {
        cfg_file: DEFAULT_CFG.to_string(),
        check_only: false,
        foreground: false,
        log_stderr: false,
        pid_file: None,
        user: None,
        group: None,
        defines: Vec::new(),
        debug_bumps: 0,
    };
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(CliError::Unknown(arg));
        };
        // Like getopt: flags may be grouped (`-DD`, `-DE`), and the last one
        // may take its value attached (`-ffile`) or as the next argument.
        for (i, c) in flags.char_indices() {
            let attached = &flags[i + c.len_utf8()..];
            let mut value = |name: char| -> Result<String, CliError> {
                if !attached.is_empty() {
                    Ok(attached.to_string())
                } else {
                    it.next().ok_or(CliError::MissingValue(format!("-{name}")))
                }
            };
            match c {
                'c' => args.check_only = true,
                'D' => args.foreground = true,
                'E' => args.log_stderr = true,
                'd' => args.debug_bumps += 1,
                'V' => return Ok(Command::Version),
                'h' => return Ok(Command::Help),
                'f' | 'P' | 'u' | 'g' | 'A' => {
                    let v = value(c)?;
                    match c {
                        'f' => args.cfg_file = v,
                        'P' => args.pid_file = Some(v),
                        'u' => args.user = Some(v),
                        'g' => args.group = Some(v),
                        _ => args.defines.push(match v.split_once('=') {
                            Some((n, val)) => (n.to_string(), Some(val.to_string())),
                            None => (v, None),
                        }),
                    }
                    break;
                }
                _ => return Err(CliError::Unknown(format!("-{c}"))),
            }
        }
    }
    Ok(Command::Run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> Result<Command, CliError> {
        parse(argv.iter().map(|s| s.to_string()))
    }

    fn args(argv: &[&str]) -> Args {
        match run(argv) {
            Ok(Command::Run(a)) => a,
            other => panic!("{argv:?} gave {other:?}"),
        }
    }

    #[test]
    fn flags_like_kamailio() {
        let a = args(&[
            "-f",
            "x.cfg",
            "-DD",
            "-E",
            "-P",
            "/run/p.pid",
            "-A",
            "WITH_X",
            "-AY=2",
        ]);
        assert_eq!(a.cfg_file, "x.cfg");
        assert!(a.foreground && a.log_stderr && !a.check_only);
        assert_eq!(a.pid_file.as_deref(), Some("/run/p.pid"));
        assert_eq!(
            a.defines,
            vec![("WITH_X".into(), None), ("Y".into(), Some("2".into()))]
        );
        assert_eq!(args(&[]).cfg_file, DEFAULT_CFG);
        assert!(args(&["-c", "-fk.cfg"]).check_only);
        assert_eq!(args(&["-dd", "-d"]).debug_bumps, 3);
        assert_eq!(
            args(&["-u", "bob", "-g", "grp"]).group.as_deref(),
            Some("grp")
        );
    }

    #[test]
    fn version_help_and_errors() {
        assert_eq!(run(&["-V"]), Ok(Command::Version));
        assert_eq!(run(&["-D", "-h"]), Ok(Command::Help));
        assert_eq!(run(&["-f"]), Err(CliError::MissingValue("-f".into())));
        assert_eq!(run(&["-x"]), Err(CliError::Unknown("-x".into())));
        assert_eq!(
            run(&["file.cfg"]),
            Err(CliError::Unknown("file.cfg".into()))
        );
    }
}
