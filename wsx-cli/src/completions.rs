//! `wsx completions SHELL` and `wsx man [SUBCOMMAND]`: the shell completion scripts and the man
//! pages, generated from the clap definition in `args.rs`, so they cannot drift from `--help`.

use std::io::Write;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::args::{Cli, CompletionsArgs, ManArgs};

/// Writes the completion script of `args.shell` to `out`.
pub(crate) fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "wsx", &mut script);
    out.write_all(&script).context("cannot write the completion script")
}

/// Writes a man page (roff) to `out`: wsx(1), whose SUBCOMMANDS section names wsx-serve(1) and
/// the others, or the page of `args.subcommand`, as git's tools do.
pub(crate) fn man(args: &ManArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = Cli::command();
    // Built first: the global options (--log) are copied into every subcommand.
    command.build();
    let page = match &args.subcommand {
        None => command,
        Some(name) => {
            let sub = command.find_subcommand(name).with_context(|| {
                let names: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
                format!("no subcommand {name:?} (one of: {})", names.join(", "))
            })?;
            // Named as its page (wsx-serve), invoked as it is typed (wsx serve).
            sub.clone()
                .name(format!("wsx-{name}"))
                .bin_name(format!("wsx {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(out).context("cannot write the man page")
}
