//! `[auth]` (API tokens and the anonymous role) and the one checker every
//! named secret goes through, `[[auth.tokens]]` and `[[mqtt.users]]` alike.

use super::error::{ConfigError, key_error};
use super::value::{positive_duration, within};
use crate::auth::PairingLimits;
use crate::auth::{AuthConfig, Credential, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::time::Duration;

/// `[auth]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub anonymous: String,
    pub tokens: Vec<Token>,
    pub pairing_lifetime: String,
    pub max_paired: u64,
    pub pairing_attempts_per_minute: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            anonymous: "viewer".into(),
            tokens: Vec::new(),
            pairing_lifetime: "15m".into(),
            max_paired: 64,
            pairing_attempts_per_minute: 10,
        }
    }
}

/// Longest `auth.pairing_lifetime`: a code on a printed sheet for a week
/// is a standing invitation.
const MAX_PAIRING_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// One `[[auth.tokens]]` entry exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub role: String,
    pub token: Option<String>,
    pub token_sha256: Option<String>,
}

pub(super) fn check(raw: Auth) -> Result<AuthConfig, ConfigError> {
    let anonymous = match raw.anonymous.as_str() {
        "none" => None,
        other => Some(parse_role("auth.anonymous", other).map_err(|_| {
            key_error(
                "auth.anonymous",
                format!("{other:?} is not one of none, viewer, staff, admin"),
            )
        })?),
    };
    let mut names = HashSet::new();
    let tokens = raw
        .tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            credential(
                &format!("auth.tokens[{i}]"),
                &mut names,
                "token",
                (t.name, &t.role),
                ("token", t.token),
                ("token_sha256", t.token_sha256),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lifetime = positive_duration("auth.pairing_lifetime", &raw.pairing_lifetime)?;
    let pairing = PairingLimits {
        lifetime: within(
            "auth.pairing_lifetime",
            &raw.pairing_lifetime,
            lifetime,
            Duration::from_secs(60),
            MAX_PAIRING_LIFETIME,
        )?,
        max_paired: super::value::int_in("auth.max_paired", raw.max_paired, 1, 1024)?,
        attempts_per_minute: super::value::int_in(
            "auth.pairing_attempts_per_minute",
            raw.pairing_attempts_per_minute,
            1,
            600,
        )?,
    };
    Ok(AuthConfig {
        anonymous,
        tokens,
        pairing,
    })
}

fn parse_role(key: &str, value: &str) -> Result<Role, ConfigError> {
    value.parse().map_err(|e: String| key_error(key, e))
}

/// Checks one token or MQTT user at `key`: a non-empty name unique among
/// `names` (`what` says which kind, for the error), a role, and a secret
/// given either in plain (`plain.0` names the key) or as its hex SHA-256
/// (`hashed.0`), never both.
pub(super) fn credential(
    key: &str,
    names: &mut HashSet<String>,
    what: &str,
    (name, role): (String, &str),
    plain: (&str, Option<String>),
    hashed: (&str, Option<String>),
) -> Result<Credential, ConfigError> {
    if name.is_empty() {
        return Err(key_error(format!("{key}.name"), "must not be empty"));
    }
    if !names.insert(name.clone()) {
        return Err(key_error(
            format!("{key}.name"),
            format!("duplicate {what} name {name:?}"),
        ));
    }
    let role = parse_role(&format!("{key}.role"), role)?;
    let sha256 = secret_digest(key, plain, hashed)?;
    Ok(Credential { name, role, sha256 })
}

fn secret_digest(
    key: &str,
    plain: (&str, Option<String>),
    hashed: (&str, Option<String>),
) -> Result<[u8; 32], ConfigError> {
    match (plain.1, hashed.1) {
        (Some(secret), None) if !secret.is_empty() => Ok(Sha256::digest(secret.as_bytes()).into()),
        (None, Some(hexed)) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hexed.trim(), &mut out).map_err(|_| {
                key_error(
                    format!("{key}.{}", hashed.0),
                    format!(
                        "must be 64 hexadecimal characters (printf %s '{}' | sha256sum)",
                        plain.0.to_uppercase()
                    ),
                )
            })?;
            Ok(out)
        }
        (Some(_), Some(_)) => Err(key_error(
            key,
            format!("give either {} or {}, not both", plain.0, hashed.0),
        )),
        _ => Err(key_error(
            key,
            format!("needs a non-empty {} or {}", plain.0, hashed.0),
        )),
    }
}
