//! Environment overrides: `MESERO_<SECTION>_<KEY>` sets one scalar key
//! (SPEC §5), so a systemd drop-in or a test can change one key without
//! editing the file.
//!
//! Which keys may be overridden, and as what type, is not kept by hand: it
//! is read from the raw structs themselves, by serialising their defaults
//! ([`keys`]). Every string, integer and boolean key of a section is
//! overridable; lists (`[[auth.tokens]]`, `[[mqtt.users]]`, `[[tables]]`,
//! `[[sensors]]`) are not.

use super::error::{ConfigError, key_error};

/// How a variable's text becomes the key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
}

/// One overridable key: its section, its name, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EnvKey {
    pub section: String,
    pub key: String,
    pub kind: Kind,
}

/// Every scalar key of every section of `defaults` (the raw config's
/// defaults, serialised), with the type its default has.
pub(super) fn keys(defaults: &toml::Table) -> Vec<EnvKey> {
    let mut keys = Vec::new();
    for (section, value) in defaults {
        let Some(table) = value.as_table() else {
            continue;
        };
        for (key, value) in table {
            let kind = match value {
                toml::Value::String(_) => Kind::Str,
                toml::Value::Integer(_) => Kind::Int,
                toml::Value::Boolean(_) => Kind::Bool,
                _ => continue,
            };
            keys.push(EnvKey {
                section: section.clone(),
                key: key.clone(),
                kind,
            });
        }
    }
    keys
}

/// The process's `MESERO_*` variables. `std::env::vars` panics on a name
/// or value that is not UTF-8; such a variable of another program's is
/// skipped, and one of ours is an error naming it.
pub(super) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut ours = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("MESERO_")) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => ours.push((name.to_string(), value)),
            Err(_) => return Err(key_error(name, "the value is not valid UTF-8")),
        }
    }
    Ok(ours)
}

/// Applies `MESERO_<SECTION>_<KEY>` overrides for `keys` to the parsed
/// document; returns the (dotted key, variable) pairs it applied.
pub(super) fn apply(
    doc: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    keys: &[EnvKey],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("MESERO_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let found = keys.iter().find(|k| {
            rest.strip_prefix(k.section.as_str())
                .and_then(|r| r.strip_prefix('_'))
                .is_some_and(|r| r == k.key)
        });
        // Variables for other tools (e.g. MESERO_LOG in a shell) are not
        // ours to judge unless they name one of our sections.
        let Some(EnvKey { section, key, kind }) = found else {
            let ours = keys
                .iter()
                .any(|k| rest.starts_with(&format!("{}_", k.section)));
            if ours {
                return Err(key_error(
                    name.clone(),
                    "unknown configuration key in environment override",
                ));
            }
            continue;
        };
        let dotted = format!("{section}.{key} (from {name})");
        let parsed =
            match kind {
                Kind::Str => toml::Value::String(value.clone()),
                Kind::Int => toml::Value::Integer(value.trim().parse().map_err(|_| {
                    key_error(&dotted, format!("expected an integer, got {value:?}"))
                })?),
                Kind::Bool => toml::Value::Boolean(match value.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(key_error(
                            &dotted,
                            format!("expected true or false, got {value:?}"),
                        ));
                    }
                }),
            };
        let table = doc
            .entry(section.as_str())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match table {
            toml::Value::Table(t) => {
                t.insert(key.clone(), parsed);
            }
            _ => return Err(key_error(section.as_str(), "must be a table")),
        }
        applied.push((format!("{section}.{key}"), name));
    }
    Ok(applied)
}
