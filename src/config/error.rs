//! The one error type of the config and the one way a key error is made.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key is unknown or its value is wrong; `key` is the dotted path.
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

/// A key error. Both parts may quote the file or the environment (an
/// unknown key, a variable's name), so they are made
/// [`printable`](crate::text::printable): the error stays one line.
pub fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    let (key, message) = (key.into(), message.into());
    ConfigError::Key {
        key: crate::text::printable(&key).into_owned(),
        message: crate::text::printable(&message).into_owned(),
    }
}
