//! `wsx connect URL`: a terminal client. Each stdin line is sent as a text message; each message
//! received is printed on stdout; stdin EOF starts the closing handshake (1000). The exit status
//! is 0 only when the connection closed normally (1000).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, BufReader};
use wsx::{ClientStream, CloseCode, Config, Limits, Message, WebSocket};

use crate::args::{BinaryFormat, ConnectArgs};

pub(crate) async fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let connector = connector(&args)?;
    let (mut ws, response) =
        connector.connect(&args.url).await.map_err(|e| anyhow!("{}: {e}", args.url))?;
    if args.verbose {
        let mut head = BytesMut::new();
        wsx::proto::write_response(&response, &mut head);
        print_head("< ", &head);
    }
    if !converse(&mut ws, args.binary).await? {
        return Ok(ExitCode::FAILURE);
    }
    Ok(exit_status(&ws))
}

/// The client of the command line's options.
fn connector(args: &ConnectArgs) -> anyhow::Result<wsx::Connector> {
    let config = Config::default()
        .limits(Limits::default().max_message_size(args.max_message_size))
        .keepalive(args.ping.filter(|d| !d.is_zero()))
        .deflate((!args.no_deflate).then(wsx::DeflateConfig::default));
    let mut connector =
        wsx::Connector::new().config(config).subprotocols(args.protocols.iter().cloned());
    if let Some(origin) = &args.origin {
        connector = connector.origin(origin.clone());
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} must look like \"Name: value\""))?;
        connector = connector.header(name.trim(), value.trim());
    }
    if let Some(ca) = &args.cacert {
        connector =
            connector.tls(wsx::tls::client_config(Some(ca)).context("cannot use --cacert")?);
    }
    if args.verbose {
        connector = connector.inspect_request(|request| {
            let mut head = BytesMut::new();
            wsx::proto::write_request(request, &mut head);
            print_head("> ", &head);
        });
    }
    Ok(connector)
}

/// Sends stdin's lines and prints what arrives until the connection ends: `Ok(true)` when it
/// ended (its close tells the exit status), `Ok(false)` after an error that was printed.
async fn converse(ws: &mut WebSocket<ClientStream>, binary: BinaryFormat) -> anyhow::Result<bool> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line.context("cannot read stdin")? {
                Some(line) => ws.send(Message::text(line)).await.context("cannot send")?,
                None => {
                    // Messages already on their way are still printed while the server answers.
                    stdin_open = false;
                    match ws.send(Message::close(CloseCode::NORMAL, "")).await {
                        Ok(()) | Err(wsx::Error::Closed) => {}
                        Err(e) => return Err(e).context("cannot close"),
                    }
                }
            },
            message = ws.recv() => match message {
                Some(Ok(message)) => print_message(message, binary)?,
                Some(Err(e)) => {
                    eprintln!("wsx: {e}");
                    return Ok(false);
                }
                None => return Ok(true),
            },
        }
    }
}

/// Success only for a normal close (1000); otherwise says how the connection ended.
fn exit_status(ws: &WebSocket<ClientStream>) -> ExitCode {
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

/// Prints an HTTP head line by line, as the seeds show a handshake.
fn print_head(prefix: &str, head: &[u8]) {
    let text = String::from_utf8_lossy(head);
    let mut err = std::io::stderr().lock();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let _ = writeln!(err, "{prefix}{line}");
    }
    let _ = writeln!(err);
}

fn print_message(message: Message, binary: BinaryFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match message {
        Message::Text(text) => writeln!(out, "{text}")?,
        Message::Binary(data) => match binary {
            BinaryFormat::Hex => {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(out, "{hex}")?;
            }
            BinaryFormat::Raw => {
                out.write_all(&data)?;
                writeln!(out)?;
            }
        },
        Message::Close(Some(frame)) if frame.code != CloseCode::NORMAL => {
            eprintln!("wsx: server closed with {}: {}", frame.code, frame.reason);
        }
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
    }
    out.flush()?;
    Ok(())
}
