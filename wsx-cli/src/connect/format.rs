//! What `wsx connect` sends for a stdin line and prints for a message: text, binary as hex,
//! base64 or raw, a binary prefix, JSON-RPC calls, RFC 3339 timestamps, markers and colours.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use wsx::{CloseCode, Message};

use crate::args::{BinaryFormat, ConnectArgs};

/// Turns stdin lines into messages.
pub(super) struct Encoder {
    binary: BinaryFormat,
    /// Every line is binary (--base64).
    all_binary: bool,
    prefix: Option<String>,
    /// The id of the next JSON-RPC call, with --jsonrpc.
    jsonrpc: Option<u64>,
}

impl Encoder {
    pub(super) fn new(args: &ConnectArgs) -> Self {
        Self {
            binary: if args.base64 { BinaryFormat::Base64 } else { args.binary },
            all_binary: args.base64,
            prefix: args.binary_prefix.clone().filter(|p| !p.is_empty()),
            jsonrpc: args.jsonrpc.then_some(1),
        }
    }

    /// The message for a line, or why the line is not sent.
    pub(super) fn encode(&mut self, line: String) -> Result<Message, String> {
        if self.all_binary {
            return decode(&line, self.binary).map(Message::binary);
        }
        if let Some(rest) = self.prefix.as_deref().and_then(|p| line.strip_prefix(p)) {
            return decode(rest, self.binary).map(Message::binary);
        }
        if let Some(id) = self.jsonrpc.as_mut() {
            let call = jsonrpc_call(&line, *id)?;
            *id += 1;
            return Ok(Message::text(call));
        }
        Ok(Message::text(line))
    }
}

/// `METHOD [JSON PARAMS]` as a JSON-RPC 2.0 call.
fn jsonrpc_call(line: &str, id: u64) -> Result<String, String> {
    let line = line.trim();
    let (method, params) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    if method.is_empty() {
        return Err("a JSON-RPC call needs a method".into());
    }
    let mut call = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method });
    let params = params.trim();
    if !params.is_empty() {
        let params: serde_json::Value =
            serde_json::from_str(params).map_err(|e| format!("the params are not JSON: {e}"))?;
        call["params"] = params;
    }
    Ok(call.to_string())
}

fn decode(text: &str, format: BinaryFormat) -> Result<Vec<u8>, String> {
    match format {
        BinaryFormat::Raw => Ok(text.as_bytes().to_vec()),
        BinaryFormat::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("not base64: {e}")),
        BinaryFormat::Hex => {
            let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if !digits.len().is_multiple_of(2) {
                return Err("not hex: an odd number of digits".into());
            }
            digits
                .chunks(2)
                .map(|pair| {
                    let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
                    u8::from_str_radix(pair, 16).map_err(|_| format!("not hex: {pair:?}"))
                })
                .collect()
        }
    }
}

fn encode(data: &[u8], format: BinaryFormat) -> Vec<u8> {
    match format {
        BinaryFormat::Raw => data.to_vec(),
        BinaryFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(data).into_bytes(),
        BinaryFormat::Hex => data.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect(),
    }
}

/// Turns messages into lines.
pub(super) struct Renderer {
    binary: BinaryFormat,
    prefix: Option<String>,
    timestamp: bool,
    /// `<`/`>` markers, control frames and the close shown (interactive mode).
    marked: bool,
    color: bool,
}

const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

impl Renderer {
    pub(super) fn new(args: &ConnectArgs, marked: bool, color: bool) -> Self {
        Self {
            binary: if args.base64 { BinaryFormat::Base64 } else { args.binary },
            prefix: args.binary_prefix.clone().filter(|p| !p.is_empty()),
            timestamp: args.timestamp,
            marked,
            color,
        }
    }

    /// Interactive: markers, control frames and the close are shown.
    pub(super) fn marked(&self) -> bool {
        self.marked
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn start(&self, marker: &str, color: &str) -> Vec<u8> {
        let mut line = Vec::new();
        if self.timestamp {
            line.extend_from_slice(rfc3339(SystemTime::now()).as_bytes());
            line.push(b' ');
        }
        if self.marked {
            line.extend_from_slice(self.paint(color, marker).as_bytes());
            line.push(b' ');
        }
        line
    }

    fn data(&self, line: &mut Vec<u8>, message: &Message) {
        match message {
            Message::Text(text) => line.extend_from_slice(text.as_bytes()),
            Message::Binary(data) => {
                if let Some(prefix) = &self.prefix {
                    line.extend_from_slice(prefix.as_bytes());
                }
                line.extend_from_slice(&encode(data, self.binary));
            }
            _ => {}
        }
    }

    /// The line (without its newline) for a message received; `None`: nothing to print.
    pub(super) fn incoming(&self, message: &Message) -> Option<Vec<u8>> {
        let color = match message {
            Message::Text(_) | Message::Binary(_) => GREEN,
            _ if !self.marked => return None,
            Message::Close(Some(frame)) if frame.code != CloseCode::NORMAL => RED,
            _ => DIM,
        };
        let mut line = self.start("<", color);
        match message {
            Message::Text(_) | Message::Binary(_) => self.data(&mut line, message),
            Message::Ping(data) | Message::Pong(data) => {
                let kind = if matches!(message, Message::Ping(_)) { "ping" } else { "pong" };
                let text = match data.len() {
                    0 => kind.to_string(),
                    _ => format!(
                        "{kind} {}",
                        String::from_utf8_lossy(&encode(data, BinaryFormat::Hex))
                    ),
                };
                line.extend_from_slice(self.paint(DIM, &text).as_bytes());
            }
            Message::Close(frame) => {
                let text = match frame {
                    Some(frame) if frame.reason.is_empty() => format!("close {}", frame.code),
                    Some(frame) => format!("close {}: {}", frame.code, frame.reason),
                    None => "close (no status code)".to_string(),
                };
                line.extend_from_slice(self.paint(color, &text).as_bytes());
            }
        }
        Some(line)
    }

    /// The line for a message sent (interactive mode only: a close; lines typed stay on screen
    /// after the `>` prompt).
    pub(super) fn outgoing(&self, message: &Message) -> Option<Vec<u8>> {
        if !self.marked || !matches!(message, Message::Close(_)) {
            return None;
        }
        let mut line = self.start(">", CYAN);
        match message {
            Message::Close(Some(frame)) => {
                line.extend_from_slice(self.paint(DIM, &format!("close {}", frame.code)).as_bytes())
            }
            _ => self.data(&mut line, message),
        }
        Some(line)
    }
}

/// `2024-05-01T12:34:56.789Z`: RFC 3339 in UTC with milliseconds.
pub(super) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn hex_and_base64_round_trip() {
        for format in [BinaryFormat::Hex, BinaryFormat::Base64] {
            let data = [0u8, 1, 159, 255];
            let text = String::from_utf8(encode(&data, format)).unwrap();
            assert_eq!(decode(&text, format).unwrap(), data);
        }
        assert!(decode("abc", BinaryFormat::Hex).is_err());
        assert!(decode("zz", BinaryFormat::Hex).is_err());
        assert!(decode("!!", BinaryFormat::Base64).is_err());
    }

    #[test]
    fn jsonrpc_calls() {
        assert_eq!(
            jsonrpc_call("Page.navigate {\"url\": \"about:blank\"}", 7).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"method":"Page.navigate","params":{"url":"about:blank"}}"#
        );
        assert_eq!(
            jsonrpc_call("Runtime.enable", 1).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"Runtime.enable"}"#
        );
        assert!(jsonrpc_call("m {not json", 1).is_err());
        assert!(jsonrpc_call("  ", 1).is_err());
    }
}
