//! Where `wsx connect`'s lines come from: stdin read on a thread of its own (a pending read
//! never holds up the exit), into a bounded queue that keeps lines typed while reconnecting;
//! from a terminal, a prompt with line editing and history.

use std::io::BufRead as _;

use tokio::sync::mpsc;

/// What the reader hands over.
#[derive(Debug)]
pub(super) enum Input {
    Line(String),
    /// Ctrl-C at the prompt (interactive mode).
    Interrupt,
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

/// Prints above the prompt without breaking the line being typed.
pub(super) type Printer = Box<dyn rustyline::ExternalPrinter + Send>;

/// Reads lines at a prompt with line editing and history (stdin is a terminal): Ctrl-D ends
/// them, Ctrl-C is an [`Input::Interrupt`].
pub(super) fn spawn_editor(prompt: String) -> anyhow::Result<(mpsc::Receiver<Input>, Printer)> {
    use rustyline::error::ReadlineError;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (ready, printer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(editor) => editor,
            Err(e) => return drop(ready.send(Err(e))),
        };
        match editor.create_external_printer() {
            Ok(printer) => drop(ready.send(Ok(Box::new(printer) as Printer))),
            Err(e) => return drop(ready.send(Err(e))),
        }
        loop {
            let item = match editor.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Input::Line(line)
                }
                Err(ReadlineError::Interrupted) => Input::Interrupt,
                Err(ReadlineError::Eof) => break,
                Err(e) => Input::Error(std::io::Error::other(e)),
            };
            let stop = matches!(item, Input::Error(_));
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    let printer = printer.recv()?.map_err(|e| anyhow::anyhow!("cannot start the prompt: {e}"))?;
    Ok((rx, printer))
}
