//! shardcap: merge captures by packet time, shard by flow, feed IDS instances, ship their logs.

use clap::Parser;

use shardcap::cli::{Cli, Command, StateCommand};
use shardcap::{control, dispatch, generate, scan, ship, state};

fn main() {
    let cli = Cli::parse();
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
        Command::Run(args) => dispatch::run(*args),
        Command::Scan(args) => scan::run(args),
        Command::Ctl(args) => control::ctl::run(args),
        Command::State(StateCommand::Show(args)) => state::show::run(args),
        Command::Generate(args) => generate::run(args.into()),
        Command::Ship(args) => ship::run(args.config(), args.logdirs),
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
