//! `wsx completions SHELL` and `wsx man`: generated from the clap definition, so they name every
//! subcommand and option the binary has.

use std::process::Command;

const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// What `wsx ARGS` prints on stdout (it must succeed).
fn stdout_of(args: &[&str]) -> String {
    let output = Command::new(WSX).args(args).output().expect("the wsx binary runs");
    assert!(output.status.success(), "wsx {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn bash_completion_knows_the_subcommands_and_options() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("complete -F _wsx"), "a bash completion function: {script:.200}");
    for word in ["serve", "connect", "bench", "token", "bridge", "completions", "man"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    for option in ["--exec-shared", "--tcp-forward", "--unix", "--tcp-listen", "--exec-binary"] {
        assert!(script.contains(option), "bash completion lacks {option}");
    }
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    assert!(stdout_of(&["completions", "zsh"]).starts_with("#compdef wsx"));
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c wsx") && fish.contains("serve"), "{fish:.300}");
}

#[test]
fn man_pages_render() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH wsx 1"), "a roff title line: {page:.200}");
    assert!(page.contains(".SH SYNOPSIS") && page.contains("wsx\\-serve(1)"), "{page}");
    let serve = stdout_of(&["man", "serve"]);
    assert!(serve.contains(".TH wsx-serve 1"), "{serve:.200}");
    assert!(serve.contains("\\-\\-exec\\-shared"), "serve's page lists its options");
    assert!(stdout_of(&["man", "bridge"]).contains("\\-\\-tcp\\-listen"));
    let unknown = Command::new(WSX).args(["man", "nope"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no subcommand"));
}
