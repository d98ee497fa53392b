//! Where `wsx connect`'s lines come from: stdin read on a thread of its own (a pending read
//! never holds up the exit), into a bounded queue that keeps lines typed while reconnecting.

use std::io::BufRead as _;

use tokio::sync::mpsc;

/// What the reader hands over.
#[derive(Debug)]
pub(super) enum Input {
    Line(String),
    Error(std::io::Error),
}

/// Lines queued at most (the reader waits beyond it).
pub(super) const QUEUE: usize = 1024;

/// Reads stdin's lines as they are, until its end (the channel then closes).
pub(super) fn spawn_pipe() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let item = match line {
                Ok(line) => Input::Line(line),
                Err(e) => Input::Error(e),
            };
            let stop = matches!(item, Input::Error(_));
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    rx
}
