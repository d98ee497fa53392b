//! The `superchat` wire format (docs/rooms.md), in one place: what a joining member asks for in
//! its URL's query ([`Join`]), and the JSON frames the server sends ([`welcome`], [`posted`],
//! [`presence`], [`error`]). Pure functions: the session (`session.rs`) sends what they make.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use wsx::{Message, Prepared};

use super::bus::{Event, Member, Posted, Replay, Start};
use super::safepath::percent_decode;

/// Longest presence name, in characters.
const MAX_NAME: usize = 64;

/// What a member asks for when it joins a room (its URL's query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    /// Its name in the presence list.
    pub(crate) name: String,
    pub(crate) start: Start,
}

impl Join {
    /// The join that `query` asks for, history bounded by `max_history`; `Err` says which
    /// parameter is wrong (the upgrade is refused with 400).
    pub(crate) fn from_query(query: Option<&str>, max_history: u64) -> Result<Self, String> {
        let (mut name, mut history, mut since, mut epoch) = (None, None, None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                decode(value).ok_or_else(|| format!("{key}: not valid percent-encoded UTF-8"))?;
            match key {
                "name" => name = Some(value),
                "history" => history = Some(number("history", &value)?),
                "since" => since = Some(number("since", &value)?),
                "epoch" => epoch = Some(value),
                _ => {}
            }
        }
        let name = name.unwrap_or_else(|| "anonymous".to_string());
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(format!("name: 1 to {MAX_NAME} characters"));
        }
        let start = match (since, epoch, history) {
            (Some(offset), Some(epoch), _) if !epoch.is_empty() => Start::After { epoch, offset },
            (Some(_), _, _) => {
                return Err("since: needs the epoch (since=OFFSET&epoch=EPOCH)".into())
            }
            (None, Some(_), _) => {
                return Err("epoch: needs since (since=OFFSET&epoch=EPOCH)".into())
            }
            (None, None, Some(n)) if n > 0 => Start::Last(n.min(max_history)),
            (None, None, _) => Start::Live,
        };
        Ok(Self { name, start })
    }
}

/// `value` as a number of `what`.
fn number(what: &str, value: &str) -> Result<u64, String> {
    value.parse().map_err(|_| format!("{what}: not a number: {value:?}"))
}

/// A query value, percent-decoded (`+` is a space).
fn decode(value: &str) -> Option<String> {
    percent_decode(&value.replace('+', " "))
}

/// The first frame: the room's place, what follows, whether a resume recovered everything,
/// and who is here.
pub(crate) fn welcome(room: &str, member: &Member, start: &Start, replay: &Replay) -> Message {
    let first = replay.posted.first().map_or(replay.top + 1, |p| p.offset);
    let presence: Vec<Value> =
        replay.presence.iter().map(|m| json!({ "member": &*m.id, "name": m.name })).collect();
    let mut frame = json!({
        "type": "welcome",
        "room": room,
        "epoch": &*replay.epoch,
        "offset": replay.top,
        "first": first,
        "member": &*member.id,
    });
    if let Some(resume) = resumed(start, replay) {
        frame["recovered"] = Value::from(resume == Resume::Recovered);
        if resume != Resume::Recovered {
            frame["lost"] = Value::from(resume.label());
        }
    }
    frame["presence"] = Value::from(presence);
    Message::text(frame.to_string())
}

/// How a resume went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Every message after the member's offset is replayed.
    Recovered = 0,
    /// Some are lost: the history does not reach back that far.
    TooOld = 1,
    /// Some are lost: the room's history was lost (or the offset is not of this epoch).
    Epoch = 2,
}

impl Resume {
    /// Its name in `welcome.lost` and in /metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Recovered => "recovered",
            Self::TooOld => "too_old",
            Self::Epoch => "epoch",
        }
    }
}

/// How a member starting at `start` resumes with `replay`; `None` when it does not resume.
pub(crate) fn resumed(start: &Start, replay: &Replay) -> Option<Resume> {
    let Start::After { epoch, offset } = start else { return None };
    let first = replay.posted.first().map_or(replay.top + 1, |p| p.offset);
    Some(if **epoch != *replay.epoch || *offset > replay.top {
        Resume::Epoch
    } else if first != offset + 1 {
        Resume::TooOld
    } else {
        Resume::Recovered
    })
}

/// A room message's frame, made (and compressed) once however many members receive it.
pub(crate) fn posted(posted: &Posted) -> &Prepared {
    posted.frame.get_or_init(|| {
        let mut frame = json!({
            "type": "message",
            "epoch": &*posted.epoch,
            "offset": posted.offset,
        });
        match &posted.message {
            Message::Binary(bytes) => {
                frame["binary"] = base64::engine::general_purpose::STANDARD.encode(bytes).into()
            }
            other => frame["text"] = other.as_text().unwrap_or_default().into(),
        }
        Prepared::new(Message::text(frame.to_string())).expect("a text message")
    })
}

/// A presence event's frame (`join` or `leave`), for an [`Event::Joined`] or [`Event::Left`].
pub(crate) fn presence(event: &Event) -> Option<Message> {
    let (kind, member): (&str, &Arc<Member>) = match event {
        Event::Joined(m) => ("join", m),
        Event::Left(m) => ("leave", m),
        Event::Posted(_) | Event::Batch(_) | Event::Refused(_) => return None,
    };
    let frame = json!({ "type": kind, "member": &*member.id, "name": member.name });
    Some(Message::text(frame.to_string()))
}

/// A message of the member's that was not published: `reason` is `rate`, `no_publish` or
/// `broker_down`.
pub(crate) fn error(reason: &str, text: &str) -> Message {
    let frame = json!({ "type": "error", "reason": reason, "dropped": true, "text": text });
    Message::text(frame.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(message: &Message) -> Value {
        serde_json::from_str(message.as_text().unwrap()).unwrap()
    }

    #[test]
    fn queries() {
        let join = |q| Join::from_query(Some(q), 100);
        assert_eq!(Join::from_query(None, 100).unwrap().start, Start::Live);
        assert_eq!(Join::from_query(None, 100).unwrap().name, "anonymous");
        assert_eq!(join("name=J%C3%BCrgen+B").unwrap().name, "Jürgen B");
        assert_eq!(join("history=5").unwrap().start, Start::Last(5));
        assert_eq!(join("history=500").unwrap().start, Start::Last(100), "bounded");
        assert_eq!(join("history=0&x=1").unwrap().start, Start::Live);
        let resume = Start::After { epoch: "ab".into(), offset: 7 };
        assert_eq!(join("since=7&epoch=ab&history=3").unwrap().start, resume);
        assert!(join("history=x").unwrap_err().contains("history"));
        assert!(join("since=3").unwrap_err().contains("epoch"));
        assert!(join("epoch=ab").unwrap_err().contains("since"));
        assert!(join("name=").is_err());
        let long = format!("name={}", "x".repeat(65));
        assert!(join(&long).is_err());
        assert!(join("name=%ff").is_err());
    }

    #[test]
    fn frames() {
        let member = Member { id: "n1-1".into(), name: "ada".into() };
        let posted: Vec<_> = (4..=5)
            .map(|i| Arc::new(Posted::new("e1".into(), i, Message::text(format!("m{i}")), 0)))
            .collect();
        let replay = Replay {
            epoch: "e1".into(),
            top: 5,
            posted: posted.clone(),
            presence: vec![member.clone()],
        };
        let w = json(&welcome("r", &member, &Start::Last(2), &replay));
        assert_eq!(
            w,
            serde_json::json!({"type":"welcome","room":"r","epoch":"e1","offset":5,"first":4,
                "member":"n1-1","presence":[{"member":"n1-1","name":"ada"}]})
        );
        let after = |epoch: &str, offset| Start::After { epoch: epoch.into(), offset };
        let w = json(&welcome("r", &member, &after("e1", 3), &replay));
        assert_eq!((w["recovered"].as_bool(), w.get("lost")), (Some(true), None));
        let w = json(&welcome("r", &member, &after("e1", 1), &replay));
        assert_eq!((w["recovered"].as_bool(), w["lost"].as_str()), (Some(false), Some("too_old")));
        let w = json(&welcome("r", &member, &after("e0", 3), &replay));
        assert_eq!(w["lost"], "epoch");
        let live = Replay { posted: vec![], ..replay };
        let w = json(&welcome("r", &member, &after("e1", 5), &live));
        assert_eq!((w["recovered"].as_bool(), w["first"].as_u64()), (Some(true), Some(6)));

        let frame = |p: &Prepared| serde_json::from_slice::<Value>(p.payload()).unwrap();
        let p = frame(super::posted(&posted[0]));
        assert_eq!(p, serde_json::json!({"type":"message","epoch":"e1","offset":4,"text":"m4"}));
        let binary = Posted::new("e1".into(), 9, Message::binary(vec![0u8, 1, 2, 255]), 0);
        assert_eq!(frame(super::posted(&binary))["binary"], "AAEC/w==");
        let j = json(&presence(&Event::Joined(Arc::new(member))).unwrap());
        assert_eq!(j, serde_json::json!({"type":"join","member":"n1-1","name":"ada"}));
        assert_eq!(json(&error("rate", "slow down"))["reason"], "rate");
    }
}
