//! `wsx`: a ready WebSocket server (`wsx serve`), a terminal client (`wsx connect`), a TCP
//! bridge (`wsx bridge`), a load generator (`wsx bench`), a token minter for the server's
//! authentication (`wsx token`), and its own completions and man pages.

mod args;
mod bench;
mod bridge;
mod completions;
mod connect;
mod dial;
mod jwt;
mod net;
mod pipe;
mod serve;
mod signal;
mod token;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let filter = match &cli.log {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("wsx: invalid --log filter: {e}");
            return ExitCode::from(2);
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    // What needs no runtime runs before one starts.
    let now = match &cli.command {
        args::Command::Token(args) => Some(token::run(args)),
        args::Command::Completions(args) => {
            Some(completions::completions(args, &mut std::io::stdout().lock()))
        }
        args::Command::Man(args) => Some(completions::man(args, &mut std::io::stdout().lock())),
        _ => None,
    };
    if let Some(done) = now {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsx: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wsx: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            // On a worker thread, not this one: a connection task spawned from a worker starts
            // in its local queue, while one spawned from here must wake a worker (a futex call
            // per connection).
            args::Command::Serve(args) => match tokio::spawn(serve::run(args)).await {
                Ok(result) => result.map(|()| ExitCode::SUCCESS),
                Err(e) => Err(anyhow::anyhow!("the server stopped unexpectedly: {e}")),
            },
            args::Command::Connect(args) => connect::run(args).await,
            args::Command::Bridge(args) => bridge::run(args).await,
            args::Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
            args::Command::Token(_) | args::Command::Completions(_) | args::Command::Man(_) => {
                unreachable!("run before the runtime starts")
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsx: {e:#}");
            ExitCode::FAILURE
        }
    }
}
