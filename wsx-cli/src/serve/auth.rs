//! Token authentication of WebSocket upgrades (`--auth-hs256-secret-file`, `WSX_AUTH_SECRET`,
//! `--auth-public-key`): where a JWT may travel in an upgrade request, what its claims allow.
//! A leaf of the module graph: `upgrade.rs` asks it, for both upgrade paths.
//!
//! The token comes in `Authorization: Bearer <jwt>`, the query parameter `access_token=<jwt>`,
//! or (for browsers, which cannot set headers) a `Sec-WebSocket-Protocol` entry
//! `access_token.<jwt>`, which is never chosen as the subprotocol. Claims: `sub` (or `name`) is
//! the user, `rooms` the rooms it may join (`"*"`: any), `publish` those it may write to
//! (absent: all it may join), `exp` is required. docs/auth.md says the same for users.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use http::{header, HeaderMap, Uri};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::args::{KeyAlg, ServeArgs};
use crate::jwt;

/// The query parameter that may carry the token.
pub(crate) const QUERY_PARAMETER: &str = "access_token";
/// The prefix of the `Sec-WebSocket-Protocol` entry that may carry the token.
pub(crate) const PROTOCOL_PREFIX: &str = "access_token.";

/// How upgrades are authenticated.
pub(crate) struct Auth {
    key: DecodingKey,
    validation: Validation,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token in the request: 401.
    Missing,
    /// A token that does not verify (signature, format, algorithm, audience, no user): 401.
    Invalid(String),
    /// A token past its `exp`: 401.
    Expired,
    /// A valid token that does not list the room: 403.
    Forbidden(String),
}

/// What a valid token allows one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The user: the `name` claim, else `sub`.
    pub(crate) user: String,
    /// When the token expires (`exp`).
    pub(crate) expires: SystemTime,
    /// Whether the user may write to the room it joined (always true for echo).
    pub(crate) publish: bool,
}

impl Auth {
    /// The authentication configured by `args`; `None` when it is off.
    pub(crate) fn from_args(args: &ServeArgs) -> anyhow::Result<Option<Self>> {
        jwt::install();
        let (key, algorithm) = match (&args.auth_public_key, args.auth_alg) {
            (Some(path), Some(alg)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --auth-public-key {}", path.display()))?;
                let key = match alg {
                    KeyAlg::Rs256 => DecodingKey::from_rsa_pem(&pem),
                    KeyAlg::Es256 => DecodingKey::from_ec_pem(&pem),
                };
                let key = key.with_context(|| {
                    format!("--auth-public-key {}: not a {alg:?} public key", path.display())
                })?;
                let algorithm = match alg {
                    KeyAlg::Rs256 => Algorithm::RS256,
                    KeyAlg::Es256 => Algorithm::ES256,
                };
                (key, algorithm)
            }
            _ => match jwt::secret(args.auth_hs256_secret_file.as_deref())? {
                Some(secret) => (DecodingKey::from_secret(secret.as_slice()), Algorithm::HS256),
                None => return Ok(None),
            },
        };
        Ok(Some(Self::new(key, algorithm, args.auth_audience.as_deref())))
    }

    fn new(key: DecodingKey, algorithm: Algorithm, audience: Option<&str>) -> Self {
        // Only the configured algorithm (never the token's choice), `exp` required and exact:
        // the server that checks it also closes the connection at that second.
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // Without an audience, a token that names one (meant for another service) is refused.
        if let Some(audience) = audience {
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "aud"]);
        }
        Self { key, validation }
    }

    /// Checks the token of an upgrade request (`uri`, `headers`) to `room` (`None`: echo).
    pub(crate) fn check(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        room: Option<&str>,
    ) -> Result<Grant, Denied> {
        let token = token(uri, headers).ok_or(Denied::Missing)?;
        let claims = match decode::<Value>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(e) if *e.kind() == ErrorKind::ExpiredSignature => return Err(Denied::Expired),
            Err(e) => return Err(Denied::Invalid(e.to_string())),
        };
        grant(&claims, room)
    }
}

/// What `claims` (already verified) allow in `room`.
fn grant(claims: &Value, room: Option<&str>) -> Result<Grant, Denied> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let user = text("name").or_else(|| text("sub"));
    let user = user.ok_or_else(|| Denied::Invalid("the token names no user (sub)".into()))?;
    let exp = claims.get("exp").and_then(Value::as_u64);
    let exp = exp.ok_or_else(|| Denied::Invalid("exp is not a number of seconds".into()))?;
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    let publish = match room {
        None => true,
        Some(room) => {
            if !lists(claims.get("rooms"), room)? {
                return Err(Denied::Forbidden(format!("{user} may not join room {room}")));
            }
            match claims.get("publish") {
                None | Some(Value::Null) => true,
                some => lists(some, room)?,
            }
        }
    };
    Ok(Grant { user: user.to_string(), expires, publish })
}

/// Whether a rooms claim (a list of names, or one name; `"*"`: any) names `room`.
fn lists(claim: Option<&Value>, room: &str) -> Result<bool, Denied> {
    let names = |name: &Value| name.as_str().is_some_and(|n| n == "*" || n == room);
    match claim {
        None | Some(Value::Null) => Ok(false),
        Some(one @ Value::String(_)) => Ok(names(one)),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => Ok(list.iter().any(names)),
        Some(_) => Err(Denied::Invalid("rooms and publish are lists of room names".into())),
    }
}

/// The token of an upgrade request: `Authorization: Bearer`, else the `access_token` query
/// parameter, else a `Sec-WebSocket-Protocol` entry `access_token.<jwt>`.
pub(crate) fn token<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let query = || {
        uri.query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix(QUERY_PARAMETER)?.strip_prefix('='))
    };
    let protocol = || {
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|entry| entry.trim().strip_prefix(PROTOCOL_PREFIX))
    };
    bearer.or_else(query).or_else(protocol).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn request(uri: &str, headers: &[(&'static str, &str)]) -> (Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().unwrap());
        }
        (uri.parse().unwrap(), map)
    }

    fn mint(secret: &[u8], claims: &Value) -> String {
        jwt::install();
        encode(&Header::default(), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn in_an_hour() -> u64 {
        jsonwebtoken::get_current_timestamp() + 3600
    }

    #[test]
    fn the_token_travels_in_a_header_the_query_or_a_subprotocol() {
        let (uri, headers) = request("/chat/a", &[("authorization", "Bearer h.h.h")]);
        assert_eq!(token(&uri, &headers), Some("h.h.h"));
        let (uri, headers) = request("/chat/a?x=1&access_token=q.q.q", &[]);
        assert_eq!(token(&uri, &headers), Some("q.q.q"));
        let protocols = [("sec-websocket-protocol", "chat, access_token.p.p.p")];
        let (uri, headers) = request("/chat/a", &protocols);
        assert_eq!(token(&uri, &headers), Some("p.p.p"));
        let (uri, headers) = request("/chat/a?access_tokenx=1", &[("authorization", "Basic x")]);
        assert_eq!(token(&uri, &headers), None);
    }

    #[test]
    fn claims_decide_the_rooms_and_the_right_to_write() {
        let auth = Auth::new(DecodingKey::from_secret(b"s"), Algorithm::HS256, None);
        let check = |claims: Value, room: Option<&str>| {
            let (uri, headers) = request(&format!("/?access_token={}", mint(b"s", &claims)), &[]);
            auth.check(&uri, &headers, room)
        };
        let exp = in_an_hour();
        let alice = json!({ "sub": "alice", "exp": exp, "rooms": ["lobby"] });
        let grant = check(alice.clone(), Some("lobby")).unwrap();
        assert_eq!((grant.user.as_str(), grant.publish), ("alice", true));
        assert_eq!(grant.expires, SystemTime::UNIX_EPOCH + Duration::from_secs(exp));
        assert!(matches!(check(alice.clone(), Some("other")), Err(Denied::Forbidden(_))));
        assert!(check(alice, None).is_ok(), "echo needs a valid token only");
        let named = json!({ "sub": "u1", "name": "Bob", "exp": exp, "rooms": "*", "publish": [] });
        let grant = check(named, Some("any")).unwrap();
        assert_eq!((grant.user.as_str(), grant.publish), ("Bob", false));
        let nobody = json!({ "exp": exp, "rooms": "*" });
        assert!(matches!(check(nobody, None), Err(Denied::Invalid(_))));
        let no_rooms = json!({ "sub": "carol", "exp": exp });
        assert!(matches!(check(no_rooms, Some("lobby")), Err(Denied::Forbidden(_))));
        let odd = json!({ "sub": "dave", "exp": exp, "rooms": {"lobby": true} });
        assert!(matches!(check(odd, Some("lobby")), Err(Denied::Invalid(_))));
    }

    #[test]
    fn missing_forged_expired_and_malformed_tokens_are_refused() {
        let auth = Auth::new(DecodingKey::from_secret(b"s"), Algorithm::HS256, None);
        let check = |token: &str| {
            let (uri, headers) = request("/echo", &[("authorization", &format!("Bearer {token}"))]);
            auth.check(&uri, &headers, None)
        };
        let (uri, headers) = request("/echo", &[]);
        assert_eq!(auth.check(&uri, &headers, None), Err(Denied::Missing));
        let forged = mint(b"not s", &json!({ "sub": "a", "exp": in_an_hour() }));
        assert!(matches!(check(&forged,), Err(Denied::Invalid(_))));
        let old = mint(b"s", &json!({ "sub": "a", "exp": 1_000_000 }));
        assert_eq!(check(&old), Err(Denied::Expired));
        let forever = mint(b"s", &json!({ "sub": "a" }));
        assert!(matches!(check(&forever), Err(Denied::Invalid(_))), "exp is required");
        let string_exp = mint(b"s", &json!({ "sub": "a", "exp": "99999999999" }));
        assert!(matches!(check(&string_exp), Err(Denied::Invalid(_))));
        let later = mint(b"s", &json!({ "sub": "a", "exp": in_an_hour(), "nbf": in_an_hour() }));
        assert!(matches!(check(&later), Err(Denied::Invalid(_))), "not valid before nbf");
        let audience = mint(b"s", &json!({ "sub": "a", "exp": in_an_hour(), "aud": "other" }));
        assert!(matches!(check(&audience), Err(Denied::Invalid(_))));
        assert!(matches!(check("not.a.jwt"), Err(Denied::Invalid(_))));
    }
}
