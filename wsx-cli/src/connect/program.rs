//! `wsx connect URL --exec 'CMD ARGS'`: a program's stdin and stdout wired to the connection
//! (websocat's `cmd:`), the client side of what `wsx serve --exec` does: each line it prints is
//! a text message, each message received a line on its stdin (`--exec-binary`: raw bytes both
//! ways); its stderr is wsx's. The program ending (its stdout closed) closes the connection
//! with 1000, or 1011 when it failed, and wsx exits with its status; the connection closing
//! gives it EOF on stdin, and SIGKILL if it has not exited within two seconds.

use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use wsx::{CloseCode, WebSocket};

use super::Io;
use crate::pipe::{close, pump, split, Ended, Ends, Framing};

/// How long the program has to exit after its stdin or stdout closed, before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Runs `line`'s program with `ws` until one of them ends, or Ctrl-C (closes with 1000);
/// `binary`: raw bytes as binary messages, else lines of at most `max` bytes.
pub(super) async fn run<S: Io>(
    ws: &mut WebSocket<S>,
    line: &str,
    binary: bool,
    max: usize,
) -> anyhow::Result<ExitCode> {
    let words = split(line).map_err(|e| anyhow::anyhow!("--exec {line:?}: {e}"))?;
    let Some(program) = words.first() else { anyhow::bail!("--exec: no command given") };
    let mut child = Command::new(program)
        .args(&words[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {program:?}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        anyhow::bail!("{program:?}: no pipes to its stdin and stdout");
    };
    let framing = if binary { Framing::Chunks } else { Framing::Lines { max: max.max(1) } };
    let mut ends = Ends::spawn(stdout, stdin, framing);
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match pump(ws, &mut ends, interrupted, |_, _| {}).await {
        Ended::Output => {
            // Its stdout closed: it is ending. Its status sets the close code and ours.
            let status = reap(&mut child).await;
            let (code, reason) = close_code(status);
            close(ws, code, &reason).await;
            Ok(status.and_then(|s| s.code()).map_or(ExitCode::FAILURE, |c| ExitCode::from(c as u8)))
        }
        Ended::Stopped => {
            close(ws, CloseCode::NORMAL, "").await;
            ends.finish(GRACE).await;
            reap(&mut child).await;
            Ok(ExitCode::FAILURE)
        }
        Ended::Peer(code) => {
            // EOF on its stdin once what arrived before the close is written.
            ends.finish(GRACE).await;
            reap(&mut child).await;
            if code == Some(CloseCode::NORMAL) {
                return Ok(ExitCode::SUCCESS);
            }
            let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
            eprintln!("wsx: the connection closed with {code}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Waits for the program up to [`GRACE`], then kills it; its status (`None`: unknown).
async fn reap(child: &mut Child) -> Option<ExitStatus> {
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

/// The close for a program that ended with `status`: 1000 for success, 1011 otherwise.
fn close_code(status: Option<ExitStatus>) -> (CloseCode, String) {
    match status {
        Some(s) if s.success() => (CloseCode::NORMAL, String::new()),
        Some(s) => (CloseCode::INTERNAL_ERROR, format!("program ended: {s}")),
        None => (CloseCode::INTERNAL_ERROR, "program ended: status unknown".to_string()),
    }
}
