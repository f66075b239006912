//! Who is calling: tokens, roles, and the constant-time check.
//!
//! Roles are ordered `viewer < staff < admin`. A token is presented as
//! `Authorization: Bearer <token>` or `?token=` (EventSource and WebSocket
//! cannot set headers). The config only keeps SHA-256 digests; a presented
//! token is hashed and compared against every digest in constant time, so
//! neither timing nor an early exit tells which byte or which token matched.

use crate::config::AuthConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::str::FromStr;
use subtle::ConstantTimeEq;

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

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `None` for an anonymous request.
    pub name: Option<String>,
    pub role: Role,
}

impl Caller {
    /// The `actor` recorded on events this caller causes.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::Staff(self.name.clone().unwrap_or_else(|| "anonymous".into()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No token where one is required, or a token that matches nothing.
    Unauthenticated,
    /// A valid token whose role is too low.
    Forbidden,
}

/// Resolves a presented token (or its absence) to a caller with at least
/// `needed`.
pub fn authorize(
    auth: &AuthConfig,
    token: Option<&str>,
    needed: Role,
) -> Result<Caller, AuthError> {
    let caller = match token {
        Some(token) => identify(auth, token).ok_or(AuthError::Unauthenticated)?,
        None => Caller {
            name: None,
            role: auth.anonymous.ok_or(AuthError::Unauthenticated)?,
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

fn identify(auth: &AuthConfig, token: &str) -> Option<Caller> {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Every entry is compared, matched or not, so the time taken does not
    // depend on which token (if any) matched.
    let mut found = None;
    for entry in &auth.tokens {
        if bool::from(entry.sha256.ct_eq(&digest)) {
            found = Some(Caller {
                name: Some(entry.name.clone()),
                role: entry.role,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenEntry;

    fn config(anonymous: Option<Role>) -> AuthConfig {
        AuthConfig {
            anonymous,
            tokens: ["viewer", "staff", "admin"]
                .into_iter()
                .map(|name| TokenEntry {
                    name: format!("t-{name}"),
                    role: name.parse().expect("role"),
                    sha256: Sha256::digest(format!("secret-{name}").as_bytes()).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Staff && Role::Staff < Role::Admin);
    }

    #[test]
    fn tokens_resolve_to_their_role() {
        let auth = config(Some(Role::Viewer));
        let caller = authorize(&auth, Some("secret-staff"), Role::Staff).expect("staff");
        assert_eq!(caller.name.as_deref(), Some("t-staff"));
        assert_eq!(
            authorize(&auth, Some("secret-viewer"), Role::Staff),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            authorize(&auth, Some("wrong"), Role::Viewer),
            Err(AuthError::Unauthenticated)
        );
    }

    #[test]
    fn anonymous_gets_the_configured_role() {
        let auth = config(Some(Role::Viewer));
        assert!(authorize(&auth, None, Role::Viewer).is_ok());
        assert_eq!(
            authorize(&auth, None, Role::Staff),
            Err(AuthError::Unauthenticated)
        );
        let locked = config(None);
        assert_eq!(
            authorize(&locked, None, Role::Viewer),
            Err(AuthError::Unauthenticated)
        );
    }
}
