//! `wsx connect URL`: a terminal client. Each stdin line is sent as a text message (or binary,
//! or a JSON-RPC call, per the options); each message received is printed on stdout; stdin EOF
//! starts the closing handshake (1000) unless `--no-close`. The exit status is 0 only when the
//! connection closed normally (1000). `--reconnect` connects again after a connection is lost.

mod format;
mod input;
mod program;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use wsx::{CloseCode, Message, WebSocket};

use crate::args::ConnectArgs;
use crate::dial::{self, print_head, Dial};
use format::{Encoder, Renderer};
use input::Input;

pub(crate) async fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let connector = dial::connector(&args.client, args.verbose)?;
    if let Some(h2) = dial::http2(&args.client, connector.clone()) {
        return run_on(args, h2).await;
    }
    #[cfg(unix)]
    if let Some(unix) = dial::unix(&args.client, connector.clone(), &args.url)? {
        return run_on(args, unix).await;
    }
    run_on(args, connector).await
}

/// Runs the client over the connections of `dialer`.
async fn run_on<D: Dial>(args: ConnectArgs, dialer: D) -> anyhow::Result<ExitCode> {
    let (mut ws, response) =
        dialer.dial(&args.url).await.map_err(|e| anyhow!("{}: {e}", args.url))?;
    if args.verbose {
        let mut head = BytesMut::new();
        wsx::proto::write_response(&response, &mut head);
        print_head("< ", &head);
    }
    if let Some(line) = &args.exec {
        let max = args.client.max_message_size;
        return program::run(&mut ws, line, args.exec_binary, max).await;
    }
    // A terminal gets a prompt, markers and colours; pipes stay raw.
    let interactive = std::io::stdin().is_terminal();
    let color = interactive
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (lines, printer) = if interactive {
        let prompt = if color { "\x1b[36m>\x1b[0m " } else { "> " };
        let (lines, printer) = input::spawn_editor(prompt.to_string())?;
        (lines, Some(printer))
    } else {
        (input::spawn_pipe(), None)
    };
    let mut session = Session {
        encoder: Encoder::new(&args),
        renderer: Renderer::new(&args, interactive, color),
        lines,
        printer,
        stdin_open: true,
        closing: false,
        pending: None,
        position: None,
        interrupts: Interrupts::new()?,
        args,
    };
    loop {
        let why = match session.converse(&mut ws).await? {
            End::Aborted => return Ok(ExitCode::FAILURE),
            End::Closed if session.closing || !session.args.reconnect || !lost(&ws) => {
                return Ok(exit_status(&ws));
            }
            End::Closed => match ws.peer_close() {
                Some(Some(frame)) => format!("closed with {}: {}", frame.code, frame.reason),
                _ => "ended without a closing handshake".to_string(),
            },
            End::Lost(why) if session.args.reconnect && !session.closing => why,
            End::Lost(why) => {
                eprintln!("wsx: {why}");
                return Ok(ExitCode::FAILURE);
            }
        };
        match session.reconnect(&dialer, why).await? {
            Some(new) => ws = new,
            None => return Ok(ExitCode::FAILURE),
        }
    }
}

/// What a connection runs over.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Io for S {}

/// How a conversation ended.
enum End {
    /// The connection ended (its close tells how).
    Closed,
    /// An error: the connection is gone.
    Lost(String),
    /// A second Ctrl-C while waiting for the server's close.
    Aborted,
}

/// A connection that ended in a way worth connecting again (`--reconnect`): no close, or a close
/// that says the server is going away or overloaded.
fn lost<S: Io>(ws: &WebSocket<S>) -> bool {
    match ws.peer_close() {
        Some(Some(frame)) => matches!(frame.code.as_u16(), 1001 | 1011..=1014),
        _ => true,
    }
}

/// What lasts across connections: the lines, the encoder's JSON-RPC id, the options.
struct Session {
    args: ConnectArgs,
    encoder: Encoder,
    renderer: Renderer,
    lines: mpsc::Receiver<Input>,
    /// Interactive mode: lines are printed above the prompt.
    printer: Option<input::Printer>,
    stdin_open: bool,
    /// The Close (1000) was sent: the connection ends once the server answers.
    closing: bool,
    /// A message that could not be sent when the connection was lost (sent after reconnecting).
    pending: Option<Message>,
    /// In a `superchat` room (docs/rooms.md): the epoch and offset of the last message
    /// received, which a reconnect resumes from.
    position: Option<(String, u64)>,
    interrupts: Interrupts,
}

impl Session {
    /// Sends the lines and prints what arrives until the connection ends.
    async fn converse<S: Io>(&mut self, ws: &mut WebSocket<S>) -> anyhow::Result<End> {
        if let Some(message) = self.pending.take() {
            if let Err(e) = self.send(ws, message.clone()).await {
                self.pending = Some(message);
                return Ok(End::Lost(format!("cannot send: {e}")));
            }
        }
        loop {
            tokio::select! {
                item = self.lines.recv(), if self.stdin_open && !self.closing => match item {
                    Some(Input::Line(line)) => match self.encoder.encode(line) {
                        Ok(message) => {
                            if let Err(e) = self.send(ws, message.clone()).await {
                                if !self.args.reconnect {
                                    return Err(e).context("cannot send");
                                }
                                self.pending = Some(message);
                                return Ok(End::Lost(format!("cannot send: {e}")));
                            }
                        }
                        Err(why) => eprintln!("wsx: line not sent: {why}"),
                    },
                    Some(Input::Interrupt) => self.close(ws).await?,
                    Some(Input::Error(e)) => return Err(e).context("cannot read stdin"),
                    None => {
                        // Messages already on their way are still printed while the server
                        // answers.
                        self.stdin_open = false;
                        if !self.args.no_close {
                            self.close(ws).await?;
                        }
                    }
                },
                () = self.interrupts.next() => {
                    if self.closing {
                        eprintln!("wsx: interrupted");
                        return Ok(End::Aborted);
                    }
                    self.close(ws).await?;
                }
                message = ws.recv() => match message {
                    Some(Ok(message)) => {
                        if ws.subprotocol() == Some("superchat") {
                            self.follow(&message);
                        }
                        self.print(&message)?;
                    }
                    Some(Err(e)) => return Ok(End::Lost(e.to_string())),
                    None => return Ok(End::Closed),
                },
            }
        }
    }

    /// Keeps the position in a `superchat` room (`--reconnect` resumes from it), and says when
    /// a resume could not recover everything.
    fn follow(&mut self, message: &Message) {
        let Some(Ok(frame)) = message.as_text().map(serde_json::from_str::<serde_json::Value>)
        else {
            return;
        };
        let epoch = frame["epoch"].as_str().map(str::to_string);
        match (frame["type"].as_str(), epoch) {
            (Some("welcome"), Some(epoch)) => {
                if frame["recovered"] == false {
                    let lost = frame["lost"].as_str().unwrap_or("?");
                    eprintln!("wsx: messages were lost while away ({lost}): see docs/rooms.md");
                }
                let first = frame["first"].as_u64().unwrap_or(1);
                self.position = Some((epoch, first.saturating_sub(1)));
            }
            (Some("message"), Some(epoch)) => {
                if let Some(offset) = frame["offset"].as_u64() {
                    self.position = Some((epoch, offset));
                }
            }
            _ => {}
        }
    }

    async fn send<S: Io>(
        &mut self,
        ws: &mut WebSocket<S>,
        message: Message,
    ) -> Result<(), wsx::Error> {
        let shown = self.renderer.outgoing(&message);
        ws.send(message).await?;
        if let Some(line) = shown {
            self.write_line(&line)?;
        }
        Ok(())
    }

    /// Starts the closing handshake (1000).
    async fn close<S: Io>(&mut self, ws: &mut WebSocket<S>) -> anyhow::Result<()> {
        self.closing = true;
        match self.send(ws, Message::close(CloseCode::NORMAL, "")).await {
            Ok(()) | Err(wsx::Error::Closed) => Ok(()),
            Err(e) => Err(e).context("cannot close"),
        }
    }

    fn print(&mut self, message: &Message) -> std::io::Result<()> {
        if let Message::Close(Some(frame)) = message {
            if frame.code != CloseCode::NORMAL && !self.renderer.marked() {
                eprintln!("wsx: server closed with {}: {}", frame.code, frame.reason);
            }
        }
        match self.renderer.incoming(message) {
            Some(line) => self.write_line(&line),
            None => Ok(()),
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(printer) = self.printer.as_mut() {
            return printer
                // The newline too: after Ctrl-D no prompt is there to add one.
                .print(format!("{}\n", String::from_utf8_lossy(line)))
                .map_err(std::io::Error::other);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// Connects again with exponential backoff (100 ms doubling to 10 s, with jitter); `None`
    /// when Ctrl-C stopped it.
    async fn reconnect<D: Dial>(
        &mut self,
        dialer: &D,
        mut why: String,
    ) -> anyhow::Result<Option<WebSocket<D::Stream>>> {
        let mut delay = Duration::from_millis(100);
        loop {
            let wait = jitter(delay);
            eprintln!("wsx: connection lost ({why}); reconnecting in {} ms", wait.as_millis());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.interrupts.next() => return Ok(None),
            }
            let url = resume_url(&self.args.url, self.position.as_ref());
            match dialer.dial(&url).await {
                Ok((ws, _)) => {
                    eprintln!("wsx: reconnected to {}", self.args.url);
                    return Ok(Some(ws));
                }
                Err(e) => why = e.to_string(),
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// `url`, resuming a `superchat` room from `position` (epoch, offset): its `since` and `epoch`
/// query parameters set (and `history` dropped), the others kept.
fn resume_url(url: &str, position: Option<&(String, u64)>) -> String {
    let Some((epoch, offset)) = position else { return url.to_string() };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let kept = query.split('&').filter(|pair| {
        let key = pair.split('=').next().unwrap_or("");
        !pair.is_empty() && !["since", "epoch", "history"].contains(&key)
    });
    let mut pairs: Vec<String> = kept.map(str::to_string).collect();
    pairs.push(format!("since={offset}"));
    // Epochs are letters and digits: nothing to escape.
    pairs.push(format!("epoch={epoch}"));
    format!("{base}?{}", pairs.join("&"))
}

/// Between half and all of `delay`, at random.
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    delay / 2 + delay.mul_f64((random % 1000) as f64 / 2000.0)
}

/// Ctrl-C (SIGINT), each one once.
struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("cannot handle SIGINT")?,
        })
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Success only for a normal close (1000); otherwise says how the connection ended.
fn exit_status<S: Io>(ws: &WebSocket<S>) -> ExitCode {
    match ws.peer_close() {
        Some(Some(frame)) if frame.code == CloseCode::NORMAL => return ExitCode::SUCCESS,
        Some(Some(frame)) => {
            eprintln!("wsx: the connection closed with {}: {}", frame.code, frame.reason);
        }
        Some(None) => eprintln!("wsx: the connection closed without a status code (1005)"),
        None => eprintln!("wsx: the connection ended without a closing handshake (1006)"),
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_resumes_from_the_last_offset() {
        let at = ("e1".to_string(), 41);
        assert_eq!(resume_url("ws://h/chat/r", None), "ws://h/chat/r");
        assert_eq!(resume_url("ws://h/chat/r", Some(&at)), "ws://h/chat/r?since=41&epoch=e1");
        assert_eq!(
            resume_url("ws://h/chat/r?name=ada&history=5&since=3&epoch=old", Some(&at)),
            "ws://h/chat/r?name=ada&since=41&epoch=e1"
        );
    }
}
