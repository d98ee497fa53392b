//! The README's synopsis of the binary is what `wsx --help` says: every option of every
//! subcommand is in it, and nothing that is not an option.

use std::collections::BTreeSet;
use std::process::Command;

const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// Long options (`--name`) in `text`.
fn long_options(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let name: String =
            rest[at + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        if !name.is_empty() {
            out.insert(format!("--{name}"));
        }
        rest = &rest[at + 2 + name.len()..];
    }
    out
}

/// The README's synopsis lines of `wsx SUBCOMMAND` (the line and its indented continuations).
fn synopsis(readme: &str, subcommand: &str) -> String {
    let start = format!("wsx {subcommand} ");
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(&start));
    let first = lines.next().unwrap_or_else(|| panic!("no `{start}` line in README.md"));
    let mut out = first.to_string();
    for line in lines.take_while(|l| l.starts_with(' ')) {
        out.push_str(line);
    }
    out
}

/// The subcommands `wsx --help` lists (so a new one cannot be left out of the README).
fn subcommands() -> Vec<String> {
    let help = Command::new(WSX).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let listed: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(listed.len() >= 7, "subcommands in `wsx --help`: {listed:?}");
    listed
}

#[test]
fn the_readme_synopsis_matches_the_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the repository's root");
    for subcommand in subcommands() {
        let subcommand = subcommand.as_str();
        let help = Command::new(WSX).args([subcommand, "--help"]).output().unwrap();
        assert!(help.status.success());
        let help = String::from_utf8(help.stdout).unwrap();
        // Option lines only (descriptions mention other options).
        let listed: String = help
            .lines()
            .filter(|l| l.trim_start().starts_with('-'))
            .map(|l| l.trim_start().split("  ").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        let mut in_help = long_options(&listed);
        in_help.remove("--help");
        let in_readme = long_options(&synopsis(&readme, subcommand));
        let missing: Vec<_> = in_help.difference(&in_readme).collect();
        let stale: Vec<_> = in_readme.difference(&in_help).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "README's `wsx {subcommand}` synopsis: missing {missing:?}, not options any more {stale:?}"
        );
    }
}
