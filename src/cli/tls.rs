//! `mesero tls init` and `mesero tls ca` (see [`crate::tls`]).

use super::out;
use crate::config::Config;
use std::time::SystemTime;

/// Makes the local CA if there is none, then issues the server certificate
/// when it is missing, due (or `force`), and says what it did.
pub fn init(config: &Config, force: bool) -> anyhow::Result<()> {
    let files = &config.http.tls;
    let names = crate::tls::names::current(&files.extra_names);
    let outcome = crate::tls::issue::ensure(files, &names, SystemTime::now(), force)?;
    if outcome.ca_created {
        out(format_args!(
            "created the local CA: {}\n",
            files.ca_cert.display()
        ))?;
    } else {
        out(format_args!(
            "local CA (kept): {}\n",
            files.ca_cert.display()
        ))?;
    }
    match &outcome.issued {
        Some(reason) => out(format_args!(
            "issued the server certificate {} ({reason}) for: {}\n",
            files.cert.display(),
            outcome.names.join(", ")
        ))?,
        None => out(format_args!(
            "server certificate {} still covers {} for more than 30 days: kept (--force renews it)\n",
            files.cert.display(),
            outcome.names.join(", ")
        ))?,
    }
    let summary = crate::tls::summary(files)?;
    out(format_args!(
        "CA fingerprint (SHA-256): {}\nA running daemon serves the new certificate from its next daily check, or after a restart.\n",
        summary.ca_fingerprint
    ))?;
    Ok(())
}

/// Prints the CA certificate (PEM), or with `path` where it is and its
/// fingerprint.
pub fn ca(config: &Config, path: bool) -> anyhow::Result<()> {
    let files = &config.http.tls;
    let summary = crate::tls::summary(files)?;
    if path {
        let expires = summary
            .ca_expires_at
            .map(crate::clock::format)
            .unwrap_or_else(|| "unknown".into());
        out(format_args!(
            "{}\nSHA-256 fingerprint: {}\nexpires: {expires}\n",
            files.ca_cert.display(),
            summary.ca_fingerprint
        ))?;
    } else {
        out(format_args!("{}", summary.ca_pem))?;
    }
    Ok(())
}
