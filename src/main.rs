//! shardcap: merge captures by packet time, shard by flow, feed IDS instances, ship their logs.

use std::io;
use std::path::Path;

use clap::{CommandFactory, Parser};

use std::sync::{Arc, Mutex};

use shardcap::cli::{Cli, Command, ShipArgs, StateCommand};
use shardcap::control::metrics::{self, Published};
use shardcap::error::{Error, Result, EXIT_OK};
use shardcap::{ctl, dispatch, scan, shipping, state};
use shardcap_ship::stats::ShipSnapshot;

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_) | Command::Ship(_)) {
        // Commands that only print end quietly when their reader goes away (`scan DIR | head`), as
        // Unix filters do; `run` and `ship` keep SIGPIPE ignored, since a consumer closing its
        // FIFO is an error they report.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("SHARDCAP_LOG")
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) if args.cluster.is_some() => dispatch::run_cluster(*args),
        Command::Run(args) => dispatch::run(*args),
        Command::Scan(args) => scan::run(args),
        Command::Ctl(args) => ctl::run(*args),
        Command::State(StateCommand::Show(args)) => state::show::run(&args.state, args.json),
        #[cfg(feature = "generate")]
        Command::Generate(args) => shardcap_gen::run(args.into())
            .map(|()| EXIT_OK)
            .map_err(Into::into),
        Command::Ship(args) => run_ship(*args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shardcap", &mut io::stdout());
            Ok(EXIT_OK)
        }
        Command::Man { dir } => man(dir.as_deref()),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shardcap: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// `shardcap ship`, with its metrics server when asked for.
fn run_ship(args: ShipArgs) -> Result<i32> {
    let latest = match &args.metrics_listen {
        Some(addr) => {
            let latest = Arc::new(Mutex::new(ShipSnapshot::default()));
            metrics::serve(addr, Published::for_ship(latest.clone()))?;
            Some(latest)
        }
        None => None,
    };
    shipping::run(args.config(), args.logdirs, latest)
}

/// Writes shardcap's manual page to stdout, or every page (shardcap and each subcommand) into
/// `dir`.
fn man(dir: Option<&Path>) -> Result<i32> {
    let fail = |what: &str, e: io::Error| Error::runtime(format!("{what}: {e}"));
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let page = clap_mangen::Man::new(cmd);
        page.render(&mut io::stdout().lock())
            .map_err(|e| fail("writing the manual page", e))?;
        return Ok(EXIT_OK);
    };
    let mut pages = vec![("shardcap".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("shardcap-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut roff = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut roff)
            .and_then(|_| std::fs::write(&path, roff))
            .map_err(|e| fail(&path.display().to_string(), e))?;
    }
    Ok(EXIT_OK)
}
