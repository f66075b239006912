//! Who is calling: roles, credentials, and the one constant-time check.
//!
//! Roles are ordered `viewer < staff < admin`. An API token is presented as
//! `Authorization: Bearer <token>` or `?token=` (EventSource and WebSocket
//! cannot set headers); an MQTT client gives a username and password in its
//! CONNECT. Both are [`Credential`]s, and both are matched by
//! [`Credentials::find`]: the config only keeps SHA-256 digests, a presented
//! secret is hashed and compared against every entry in constant time, so
//! neither timing nor an early exit tells which byte, which part or which
//! entry matched.
//!
//! This is a leaf module: `config` builds these types from the file, and
//! `http` and `broker` check callers against them.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::str::FromStr;
use subtle::{Choice, ConstantTimeEq};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not one of viewer, staff, admin")),
        }
    }
}

/// A named secret with a role: an API token (`[[auth.tokens]]`) or an
/// MQTT user (`[[mqtt.users]]`).
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub role: Role,
    /// Only the digest is kept in memory, so the plain secret is compared
    /// through its hash in constant time.
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The configured credentials of one kind (the API tokens, or the MQTT
/// users), to match a presented secret against.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a>(pub &'a [Credential]);

impl<'a> Credentials<'a> {
    /// The entry whose secret is `secret` and, when `user` is given, whose
    /// name is `user` (API tokens are presented without a name).
    ///
    /// Every entry is compared, matched or not, and name and secret are
    /// combined without branching, so the time taken does not depend on
    /// which entry (if any), or which part of it, matched.
    pub fn find(self, user: Option<&str>, secret: &str) -> Option<&'a Credential> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for entry in self.0 {
            let name = match user {
                Some(user) => entry.name.as_bytes().ct_eq(user.as_bytes()),
                None => Choice::from(1),
            };
            if bool::from(name & entry.sha256.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found
    }
}

/// The checked `[auth]` section: who may use the HTTP API.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Role of a request without a token; `None` locks reads too.
    pub anonymous: Option<Role>,
    pub tokens: Vec<Credential>,
    pub pairing: PairingLimits,
}

/// What a tablet pairing may hold (`auth.pairing_*`, `auth.max_paired`;
/// see `crate::pairing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingLimits {
    /// `auth.pairing_lifetime`: how long a pairing code is valid, at most
    /// (and by default).
    pub lifetime: std::time::Duration,
    /// `auth.max_paired`: paired tablets (not revoked) plus open codes.
    pub max_paired: usize,
    /// `auth.pairing_attempts_per_minute`: `POST /api/v1/pair` calls
    /// accepted per minute, from everyone together.
    pub attempts_per_minute: u32,
}

/// A tablet's token from a pairing (`crate::pairing`): its credential
/// (the tablet's name and role, the token's SHA-256) and its pairing id.
#[derive(Debug, Clone)]
pub struct PairedToken {
    pub id: i64,
    pub credential: Credential,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `None` for an anonymous request.
    pub name: Option<String>,
    pub role: Role,
    /// The pairing id when the token is a paired tablet's.
    pub paired: Option<i64>,
}

impl Caller {
    /// The `actor` recorded on events this caller causes.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::Staff(self.name.clone().unwrap_or_else(|| "anonymous".into()))
    }
}

/// The paired token whose secret is `secret`, compared like
/// [`Credentials::find`]: every entry, in constant time.
fn find_paired<'a>(paired: &'a [PairedToken], secret: &str) -> Option<&'a PairedToken> {
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let mut found = None;
    for entry in paired {
        if bool::from(entry.credential.sha256.ct_eq(&digest)) {
            found = Some(entry);
        }
    }
    found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No token where one is required, or a token that matches nothing.
    Unauthenticated,
    /// A valid token whose role is too low.
    Forbidden,
}

/// Resolves a presented token (or its absence) to a caller with at least
/// `needed`. The token is looked for among the configured tokens and the
/// `paired` tablets' alike: both lists are always searched whole, so the
/// time does not tell which one (or whether any) matched.
pub fn authorize(
    auth: &AuthConfig,
    paired: &[PairedToken],
    token: Option<&str>,
    needed: Role,
) -> Result<Caller, AuthError> {
    let caller = match token {
        Some(token) => {
            let configured = Credentials(&auth.tokens).find(None, token);
            let tablet = find_paired(paired, token);
            match (configured, tablet) {
                (Some(entry), _) => Caller {
                    name: Some(entry.name.clone()),
                    role: entry.role,
                    paired: None,
                },
                (None, Some(tablet)) => Caller {
                    name: Some(tablet.credential.name.clone()),
                    role: tablet.credential.role,
                    paired: Some(tablet.id),
                },
                (None, None) => return Err(AuthError::Unauthenticated),
            }
        }
        None => Caller {
            name: None,
            role: auth.anonymous.ok_or(AuthError::Unauthenticated)?,
            paired: None,
        },
    };
    if caller.role >= needed {
        Ok(caller)
    } else if caller.name.is_none() {
        // Anonymous callers are asked to authenticate rather than told no.
        Err(AuthError::Unauthenticated)
    } else {
        Err(AuthError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(anonymous: Option<Role>) -> AuthConfig {
        AuthConfig {
            anonymous,
            tokens: ["viewer", "staff", "admin"]
                .into_iter()
                .map(|name| Credential {
                    name: format!("t-{name}"),
                    role: name.parse().expect("role"),
                    sha256: Sha256::digest(format!("secret-{name}").as_bytes()).into(),
                })
                .collect(),
            pairing: PairingLimits {
                lifetime: std::time::Duration::from_secs(900),
                max_paired: 4,
                attempts_per_minute: 10,
            },
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Staff && Role::Staff < Role::Admin);
    }

    #[test]
    fn tokens_resolve_to_their_role() {
        let auth = config(Some(Role::Viewer));
        let caller = authorize(&auth, &[], Some("secret-staff"), Role::Staff).expect("staff");
        assert_eq!(caller.name.as_deref(), Some("t-staff"));
        assert_eq!(
            authorize(&auth, &[], Some("secret-viewer"), Role::Staff),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            authorize(&auth, &[], Some("wrong"), Role::Viewer),
            Err(AuthError::Unauthenticated)
        );
    }

    #[test]
    fn anonymous_gets_the_configured_role() {
        let auth = config(Some(Role::Viewer));
        assert!(authorize(&auth, &[], None, Role::Viewer).is_ok());
        assert_eq!(
            authorize(&auth, &[], None, Role::Staff),
            Err(AuthError::Unauthenticated)
        );
        let locked = config(None);
        assert_eq!(
            authorize(&locked, &[], None, Role::Viewer),
            Err(AuthError::Unauthenticated)
        );
    }

    #[test]
    fn paired_tokens_resolve_to_their_tablet() {
        let auth = config(None);
        let paired = [PairedToken {
            id: 7,
            credential: Credential {
                name: "bar-tablet".into(),
                role: Role::Staff,
                sha256: Sha256::digest(b"tablet-secret").into(),
            },
        }];
        let caller = authorize(&auth, &paired, Some("tablet-secret"), Role::Staff).expect("paired");
        assert_eq!(caller.name.as_deref(), Some("bar-tablet"));
        assert_eq!(caller.paired, Some(7));
        assert_eq!(
            authorize(&auth, &paired, Some("tablet-secret"), Role::Admin),
            Err(AuthError::Forbidden)
        );
        let config_token = authorize(&auth, &paired, Some("secret-admin"), Role::Admin);
        assert_eq!(config_token.expect("config token").paired, None);
        assert_eq!(
            authorize(&auth, &[], Some("tablet-secret"), Role::Viewer),
            Err(AuthError::Unauthenticated),
            "a revoked tablet is gone from the list"
        );
    }

    #[test]
    fn find_matches_name_and_secret_together() {
        let entry = |name: &str, secret: &str| Credential {
            name: name.into(),
            role: Role::Staff,
            sha256: Sha256::digest(secret.as_bytes()).into(),
        };
        let all = [entry("a", "pw-a"), entry("b", "pw-b")];
        let found = |user, secret| {
            Credentials(&all)
                .find(user, secret)
                .map(|c| c.name.as_str())
        };
        assert_eq!(found(Some("b"), "pw-b"), Some("b"));
        assert_eq!(found(None, "pw-a"), Some("a"), "a token has no name");
        assert_eq!(found(Some("a"), "pw-b"), None, "another entry's secret");
        assert_eq!(found(Some("c"), "pw-a"), None);
        assert_eq!(found(None, ""), None);
        assert_eq!(Credentials(&[]).find(None, "pw-a").map(|c| c.role), None);
    }
}
