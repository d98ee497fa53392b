//! Byte streams as WebSocket messages, for everything that wires a WebSocket to something that
//! is not one: a program's stdin and stdout (`wsx serve --exec`, `--exec-shared`, `wsx connect
//! --exec`) or a TCP connection (`wsx serve --tcp-forward`, `wsx bridge`). Bytes become messages
//! as lines (text messages) or as chunks (binary), each half runs on a task of its own behind a
//! bounded queue, and [`pump`] moves messages between a WebSocket and such a pair until one of
//! them ends. A leaf: it imports nothing of the crate.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wsx::{CloseCode, Message, WebSocket};

/// Messages (or lines) queued each way between a WebSocket and its byte stream: small, so a
/// side that stops reading holds the other back (its TCP window fills) instead of filling memory.
pub(crate) const QUEUE: usize = 16;

/// Bytes read at once (chunks), and the longest line read as one where no limit is given.
pub(crate) const CHUNK: usize = 64 * 1024;

/// How a byte stream's bytes become messages, and messages bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Each line (`\n` or `\r\n`) is a text message, at most `max` bytes (longer lines are cut);
    /// each message received is written followed by a newline.
    Lines { max: usize },
    /// Each chunk read (up to 64 KiB) is a binary message; messages are written as they are.
    Chunks,
}

/// The queues between a WebSocket and a byte stream whose halves run on tasks of their own
/// ([`Ends::spawn`]); the tasks are ended when this is dropped.
pub(crate) struct Ends {
    /// What goes to the stream (dropped: its writer shuts its half down once the queue is
    /// written).
    pub(crate) input: Option<mpsc::Sender<Bytes>>,
    /// What came from it, as messages; ends when the stream does.
    pub(crate) output: mpsc::Receiver<Message>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Ends {
    /// Reads `reader` and writes `writer` on tasks of their own, framed by `framing`.
    pub(crate) fn spawn<R, W>(reader: R, writer: W, framing: Framing) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (input, input_rx) = mpsc::channel(QUEUE);
        let (output_tx, output) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_input(writer, input_rx, framing != Framing::Chunks));
        let reader = match framing {
            Framing::Lines { max } => tokio::spawn(read_lines(reader, output_tx, max)),
            Framing::Chunks => tokio::spawn(read_chunks(reader, output_tx)),
        };
        Self { input: Some(input), output, reader, writer }
    }

    /// Ends the input (the writer writes what is queued, then shuts its half down) and waits up
    /// to `grace` for that; the reader is stopped.
    pub(crate) async fn finish(&mut self, grace: std::time::Duration) {
        drop(self.input.take());
        self.reader.abort();
        let _ = tokio::time::timeout(grace, &mut self.writer).await;
        self.writer.abort();
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Why [`pump`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The byte stream ended (EOF on its read half); the WebSocket is still open: the caller
    /// closes it, with the code that fits.
    Output,
    /// The WebSocket ended: the peer's close code (or the error's, or 1006 without one).
    Peer(Option<CloseCode>),
    /// `stop` fired; the WebSocket is still open.
    Stopped,
}

/// Moves messages between `ws` and `ends` until one of them ends, or `stop` fires. A message
/// received waits for room in the input queue without the WebSocket being read meanwhile (its
/// TCP window fills), while output is still sent, so neither side can block the other for good.
/// `counted(sent, bytes)` is told about each data message (`sent`: to the peer).
pub(crate) async fn pump<S>(
    ws: &mut WebSocket<S>,
    ends: &mut Ends,
    stop: impl Future<Output = ()>,
    mut counted: impl FnMut(bool, usize),
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::pin!(stop);
    let mut pending: Option<Bytes> = None;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return Ended::Stopped,
            message = ends.output.recv() => match message {
                Some(message) => {
                    let len = message.len();
                    if let Err(code) = send(ws, message, ends.output.is_empty()).await {
                        return Ended::Peer(code);
                    }
                    counted(true, len);
                }
                None => return Ended::Output,
            },
            permit = reserve(ends.input.as_ref()), if pending.is_some() => match permit {
                Some(permit) => permit.send(pending.take().unwrap_or_default()),
                // The writer is gone (the stream refused a write): input is dropped.
                None => pending = None,
            },
            item = ws.recv(), if pending.is_none() => match item {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    counted(false, m.len());
                    if ends.input.as_ref().is_some_and(|i| !i.is_closed()) {
                        pending = Some(payload(m));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Peer(e.close_code().or_else(|| peer_code(ws))),
                None => return Ended::Peer(peer_code(ws).or(Some(CloseCode::ABNORMAL))),
            },
        }
    }
}

/// Room for one more item in the input queue; `None` once its writer is gone.
pub(crate) async fn reserve(
    input: Option<&mpsc::Sender<Bytes>>,
) -> Option<mpsc::Permit<'_, Bytes>> {
    input?.reserve().await.ok()
}

/// A message's bytes as they are written (lines get their newline when written).
pub(crate) fn payload(message: Message) -> Bytes {
    match message {
        Message::Text(text) => text.into_bytes(),
        Message::Binary(bytes) => bytes,
        _ => Bytes::new(),
    }
}

/// Queues `message`, and writes everything queued when `last` (nothing more is waiting).
pub(crate) async fn send<S>(
    ws: &mut WebSocket<S>,
    message: Message,
    last: bool,
) -> Result<(), Option<CloseCode>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sent = match ws.feed(message).await {
        Ok(()) if last => ws.flush().await,
        other => other,
    };
    sent.map_err(|e| e.close_code().or_else(|| peer_code(ws)))
}

/// How the connection ended, as a close code: the peer's, if it sent one.
pub(crate) fn peer_code<S>(ws: &WebSocket<S>) -> Option<CloseCode>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.peer_close().map(|frame| frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code))
}

/// Closes with `code` (bounded: a peer that does not answer is dropped).
pub(crate) async fn close<S>(
    ws: &mut WebSocket<S>,
    code: CloseCode,
    reason: &str,
) -> Option<CloseCode>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let closing = tokio::time::timeout(std::time::Duration::from_secs(2), ws.close(code, reason));
    let _ = Box::pin(closing).await;
    Some(code)
}

/// Writes what comes from the WebSocket to `stdin` (a program's stdin or a socket's write half;
/// `lines`: each followed by a newline); shuts it down (EOF) once the WebSocket's side is
/// dropped and the queue written, and stops as soon as it refuses a write.
pub(crate) async fn write_input<W>(mut stdin: W, mut input: mpsc::Receiver<Bytes>, lines: bool)
where
    W: AsyncWrite + Unpin,
{
    while let Some(bytes) = input.recv().await {
        let written = if lines {
            let mut line = BytesMut::with_capacity(bytes.len() + 1);
            line.extend_from_slice(&bytes);
            line.extend_from_slice(b"\n");
            stdin.write_all(&line).await
        } else {
            stdin.write_all(&bytes).await
        };
        if written.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Sends each line of `stdout` (a program's, or a socket's read half) as a text message (without its `\n` or `\r\n`; not UTF-8: replaced
/// with U+FFFD; longer than `max`: cut in pieces of `max` bytes); a last line without a newline
/// too.
pub(crate) async fn read_lines<R>(stdout: R, output: mpsc::Sender<Message>, max: usize)
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(CHUNK, stdout);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut reader, &mut line, max).await {
        if output.send(Message::text(text_line(&mut line))).await.is_err() {
            return;
        }
    }
}

/// Reads one line (or `max` bytes of one) into `line`; `false` at EOF with nothing read.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(!line.is_empty());
        }
        let room = max - line.len();
        let (take, complete) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) if at < room => (at + 1, true),
            _ => (buffer.len().min(room), buffer.len() >= room),
        };
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take);
        if complete {
            return Ok(true);
        }
    }
}

/// `line` as text, without its line ending.
pub(crate) fn text_line(line: &mut Vec<u8>) -> String {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    match String::from_utf8(std::mem::take(line)) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Sends what `stdout` gives as binary messages, each chunk as it comes.
pub(crate) async fn read_chunks<R>(mut stdout: R, output: mpsc::Sender<Message>)
where
    R: AsyncRead + Unpin,
{
    loop {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        match stdout.read_buf(&mut chunk).await {
            Ok(n) if n > 0 => {
                if output.send(Message::binary(chunk.freeze())).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Splits a command line into words as a POSIX shell would, without running one: blanks
/// separate words; `'...'` keeps everything; `"..."` keeps everything but `\"`, `\\`, `\$` and
/// `` \` ``, which lose their backslash; a backslash outside quotes keeps the next character.
/// No variables, globs, pipes or redirections: for those, ask for a shell (`sh -c '...'`).
pub(crate) fn split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote"),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote"),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a backslash at the end"),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        let words = |line| split(line).unwrap();
        assert_eq!(words("cat"), ["cat"]);
        assert_eq!(words("  sh  -c 'echo  $HOME; exit 3' "), ["sh", "-c", "echo  $HOME; exit 3"]);
        assert_eq!(words(r#"printf "a \"b\" \$c \n""#), ["printf", r#"a "b" $c \n"#]);
        assert_eq!(words(r"a\ b 'x'y\'z"), ["a b", "xy'z"]);
        assert_eq!(words("'' x"), ["", "x"]);
        assert!(words("").is_empty());
        assert!(split("sh -c 'oops").is_err());
        assert!(split("say \"oops").is_err());
        assert!(split("trailing\\").is_err());
    }

    #[test]
    fn text_lines_lose_their_ending_only() {
        let mut line = b"one\r\n".to_vec();
        assert_eq!(text_line(&mut line), "one");
        let mut line = b"two\n".to_vec();
        assert_eq!(text_line(&mut line), "two");
        let mut line = b"bad \xff\n".to_vec();
        assert_eq!(text_line(&mut line), "bad \u{fffd}");
    }

    #[tokio::test]
    async fn long_lines_are_cut_at_the_limit() {
        let mut reader: &[u8] = b"abcdefgh\nij\nk";
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut reader, &mut line, 5).await.unwrap() {
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(lines, ["abcde", "fgh\n", "ij\n", "k"]);
    }
}
