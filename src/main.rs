//! siptraced: thin entry point. Arguments → config → logging → set-up →
//! reactor, with a deliberate exit-code map: 0 clean stop or check passed,
//! 1 config error (every diagnostic printed as file:line:col, whether found
//! at load or, for what only the host can decide, at start-up), 2 usage
//! error, 3 start-up failure (sockets, FIFOs, database, DNS), 4 event loop
//! failure.

use siptraced::cli::{self, Command};
use siptraced::{cfg, config, daemon, process};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("siptraced: {e}");
            return ExitCode::from(2);
        }
    };
    let args = match cmd {
        Command::Version => {
            println!(
                "siptraced {} (Kamailio siptrace compatible)",
                siptraced::VERSION
            );
            return ExitCode::SUCCESS;
        }
        Command::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Run(a) => a,
    };

    let loaded = cfg::load_file(std::path::Path::new(&args.cfg_file), &args.defines)
        .and_then(|ast| config::build(&ast));
    let (conf, program) = match loaded {
        Ok(v) => v,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("siptraced: {} error(s) in {}", diags.len(), args.cfg_file);
            return ExitCode::from(1);
        }
    };
    if args.check_only {
        for w in &conf.warnings {
            eprintln!("{w}");
        }
        println!("config file ok, exiting...");
        return ExitCode::SUCCESS;
    }

    // What MI `debug` reports: the config's level moved by -d flags
    // (RUST_LOG, a developer's override, is not a Kamailio level).
    let level = bump(conf.log_level(), args.debug_bumps);
    let debug = conf.debug_in_force(level);
    process::init_logging(
        args.log_stderr || conf.log_stderror,
        level,
        process::SyslogSettings {
            facility: conf.log_facility,
            ident: conf.log_name.clone(),
        },
    );
    for w in &conf.warnings {
        log::warn!("{w}");
    }
    // Said while the config was built, before there was a logger.
    for n in &conf.notes {
        log::log!(n.level, "{}", n.diag);
    }

    let mut rt = match daemon::setup(&args, conf, program, debug) {
        Ok(rt) => rt,
        // A config value only the host could judge is still a config
        // error: said as the load errors are, with their exit code.
        Err(daemon::SetupError::Config(d)) => {
            log::error!("{d}");
            eprintln!("{d}");
            eprintln!("siptraced: 1 error(s) in {}", args.cfg_file);
            return ExitCode::from(1);
        }
        Err(e) => {
            log::error!("{e}");
            eprintln!("siptraced: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(4)
        }
    }
}

fn bump(level: log::LevelFilter, n: i32) -> log::LevelFilter {
    use log::LevelFilter::*;
    let order = [Off, Error, Warn, Info, Debug, Trace];
    let i = order.iter().position(|l| *l == level).unwrap_or(2) as i32 + n;
    order[i.clamp(0, 5) as usize]
}
