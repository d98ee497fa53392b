//! `wsx token`: mints a JWT that `wsx serve --auth-*` accepts, for tests and small deployments
//! (a real one gets its tokens from its identity provider). docs/auth.md describes the claims.

use std::io::Write as _;

use anyhow::Context as _;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

use crate::args::{KeyAlg, TokenArgs};
use crate::jwt;

/// Prints the token that `args` describe on stdout.
pub(crate) fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let token = mint(args)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{token}").and_then(|()| stdout.flush()).context("cannot write the token")
}

/// The signed token.
fn mint(args: &TokenArgs) -> anyhow::Result<String> {
    jwt::install();
    let (key, algorithm) = match (&args.private_key, args.alg) {
        (Some(path), Some(alg)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --private-key {}", path.display()))?;
            let (key, algorithm) = match alg {
                KeyAlg::Rs256 => (EncodingKey::from_rsa_pem(&pem), Algorithm::RS256),
                KeyAlg::Es256 => (EncodingKey::from_ec_pem(&pem), Algorithm::ES256),
            };
            let key = key.with_context(|| {
                format!("--private-key {}: not a {alg:?} private key", path.display())
            })?;
            (key, algorithm)
        }
        _ => {
            let secret = jwt::secret(args.secret_file.as_deref())?.with_context(|| {
                format!("give --secret-file, --private-key and --alg, or set {}", jwt::SECRET_ENV)
            })?;
            (EncodingKey::from_secret(&secret), Algorithm::HS256)
        }
    };
    let token = encode(&Header::new(algorithm), &Value::Object(claims(args)), &key)
        .context("cannot sign the token")?;
    Ok(token)
}

/// The claims of the token: `sub`, `exp`, then those given.
fn claims(args: &TokenArgs) -> Map<String, Value> {
    let now = get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(args.sub));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(args.ttl.as_secs().max(1))));
    if let Some(name) = &args.name {
        claims.insert("name".into(), json!(name));
    }
    if !args.rooms.is_empty() {
        claims.insert("rooms".into(), json!(args.rooms));
    }
    if args.read_only {
        claims.insert("publish".into(), json!([]));
    } else if let Some(publish) = &args.publish {
        claims.insert("publish".into(), json!(publish));
    }
    if let Some(aud) = &args.aud {
        claims.insert("aud".into(), json!(aud));
    }
    claims
}
