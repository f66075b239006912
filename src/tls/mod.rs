//! HTTPS on the LAN: the certificates of `http.tls_listen` and how the
//! daemon keeps them current.
//!
//! Browsers allow service workers, installing the app and the camera only
//! in a secure context, which `http://192.168.1.20:8080` is not. So the
//! daemon can also serve its router over rustls (ring provider, as the
//! upstream bridge) on `http.tls_listen`, with a certificate from a local
//! CA that each tablet installs once (`GET /ca.crt`, README).
//!
//! - [`issue`] makes the CA (once) and the server certificate (renewed
//!   before it expires or when the host's names change); [`names`] finds
//!   those names; [`der`] reads a certificate's dates.
//! - [`Tls::start`] runs at daemon start when `http.tls_listen` is set: it
//!   does what `mesero tls init` does (the first start makes the CA), then
//!   loads the certificate. A certificate that was not made by mesero's
//!   CA (no CA key at `http.tls_ca_key`) is served as it is and never
//!   touched. Every error names the key of the file it is about.
//! - [`Tls::check`] runs daily: it renews when due and reloads the files
//!   when they changed on disk (a `mesero tls init --force`, a certificate
//!   replaced by hand). The listener asks [`Resolver`] for the certificate
//!   at each handshake, so a new one is served from the next connection
//!   on without a restart; open connections keep the one they started
//!   with.

pub mod der;
pub mod issue;
pub mod names;

use crate::config::TlsFiles;
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// How often the daemon checks its certificate (renewal, files changed).
pub const CHECK_EVERY: Duration = Duration::from_secs(86_400);

/// Largest certificate or key file read (a chain of a few certificates is
/// a few KB).
const MAX_PEM_BYTES: u64 = 64 * 1024;

/// A certificate file that is missing, unreadable or wrong; `key` is the
/// config key naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

impl TlsError {
    pub fn new(key: &'static str, message: impl Into<String>) -> TlsError {
        TlsError {
            key,
            message: message.into(),
        }
    }
}

/// The text of the PEM file at `path` (config key `key`).
pub fn read_pem(path: &Path, key: &'static str) -> Result<String, TlsError> {
    let hint = if key == "http.tls_ca_cert" || key == "http.tls_ca_key" || key == "http.tls_cert" {
        " (run `mesero tls init`)"
    } else {
        ""
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}{hint}", path.display())))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(TlsError::new(
            key,
            format!("{} is larger than {MAX_PEM_BYTES} bytes", path.display()),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}{hint}", path.display())))
}

/// Every certificate in `pem`, at least one.
fn certs(
    key: &'static str,
    path: &Path,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError::new(
                key,
                format!("{}: not PEM certificates: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::new(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The first certificate in `pem`.
pub fn first_cert(
    key: &'static str,
    path: &Path,
    pem: &str,
) -> Result<CertificateDer<'static>, TlsError> {
    let mut all = certs(key, path, pem)?;
    Ok(all.swap_remove(0))
}

/// The SHA-256 fingerprint of a certificate, as browsers show it
/// (`AB:CD:…`).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The server certificate and key of `files`, ready for rustls.
fn load(files: &TlsFiles) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let cert_pem = read_pem(&files.cert, "http.tls_cert")?;
    let chain = certs("http.tls_cert", &files.cert, &cert_pem)?;
    let key_pem = read_pem(&files.key, "http.tls_key")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        TlsError::new(
            "http.tls_key",
            format!("{}: not a PEM private key: {e}", files.key.display()),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        TlsError::new(
            "http.tls_key",
            format!("{}: unusable private key: {e}", files.key.display()),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError::new(
            "http.tls_key",
            format!(
                "{} is not the key of http.tls_cert {}: {e}",
                files.key.display(),
                files.cert.display()
            ),
        )
    })?;
    Ok((Arc::new(certified), format!("{cert_pem}{key_pem}")))
}

/// The certificate served at each handshake; replaced by [`Tls::check`].
#[derive(Debug)]
pub struct Resolver {
    /// A std lock: held to clone or swap an `Arc`, never across an await.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// What `/api/v1/tls` and `mesero tls ca` show.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The CA certificate (PEM), what `GET /ca.crt` serves.
    pub ca_pem: String,
    pub ca_fingerprint: String,
    pub ca_expires_at: Option<SystemTime>,
    /// When the server certificate expires.
    pub cert_expires_at: Option<SystemTime>,
}

/// The CA and server certificate dates of `files` (the server's may be
/// missing: `None`).
pub fn summary(files: &TlsFiles) -> Result<Summary, TlsError> {
    let ca_pem = read_pem(&files.ca_cert, "http.tls_ca_cert")?;
    let ca = first_cert("http.tls_ca_cert", &files.ca_cert, &ca_pem)?;
    let cert_expires_at = read_pem(&files.cert, "http.tls_cert")
        .and_then(|pem| first_cert("http.tls_cert", &files.cert, &pem))
        .ok()
        .and_then(|c| issue::expiry(&c));
    Ok(Summary {
        ca_fingerprint: fingerprint(&ca),
        ca_expires_at: issue::expiry(&ca),
        cert_expires_at,
        ca_pem,
    })
}

/// The HTTPS listener's certificates, one per daemon.
pub struct Tls {
    files: TlsFiles,
    resolver: Arc<Resolver>,
    config: Arc<rustls::ServerConfig>,
    /// The files' text as last loaded, to see that they changed. A std
    /// lock: only [`Tls::check`] takes it, with no await inside.
    loaded: RwLock<String>,
}

impl Tls {
    /// Renews (or first makes) the certificate when mesero's CA is there
    /// or nothing is, then loads it (module doc). Blocking file work: call
    /// it from a blocking thread.
    pub fn start(files: &TlsFiles, now: SystemTime) -> Result<Tls, TlsError> {
        Tls::renew(files, now)?;
        let (certified, text) = load(files)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(certified),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("http.tls_listen", format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        // hyper serves HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files: files.clone(),
            resolver,
            config: Arc::new(config),
            loaded: RwLock::new(text),
        })
    }

    /// Issues a server certificate when due, if mesero manages it: when
    /// its CA key is there, or when there are no certificate files at all
    /// (the first start makes the CA). Returns why it issued one.
    fn renew(files: &TlsFiles, now: SystemTime) -> Result<Option<String>, TlsError> {
        let ours = files.ca_key.exists();
        let none = !files.cert.exists() && !files.key.exists() && !files.ca_cert.exists();
        if !ours && !none {
            return Ok(None);
        }
        let names = names::current(&files.extra_names);
        let outcome = issue::ensure(files, &names, now, false)?;
        if outcome.ca_created {
            tracing::info!(ca = ?files.ca_cert, "local CA created; tablets install it from /ca.crt");
        }
        if let Some(reason) = &outcome.issued {
            tracing::info!(reason = %reason, names = ?outcome.names, cert = ?files.cert, "server certificate issued");
        }
        Ok(outcome.issued)
    }

    /// The daily check: renews when due, reloads when the files changed.
    /// Returns whether a new certificate is now served. Blocking.
    pub fn check(&self, now: SystemTime) -> Result<bool, TlsError> {
        Tls::renew(&self.files, now)?;
        let (certified, text) = load(&self.files)?;
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if *loaded == text {
            return Ok(false);
        }
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = certified;
        *loaded = text;
        tracing::info!(cert = ?self.files.cert, "new server certificate loaded; served from the next connection");
        Ok(true)
    }

    /// The rustls configuration of the listener.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Runs [`Tls::check`] every [`CHECK_EVERY`] until `shutdown`; a failed
/// check is logged and the certificate in use stays.
pub async fn check_daily(
    tls: Arc<Tls>,
    wall: crate::clock::Wall,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (tls, now) = (Arc::clone(&tls), wall.now());
        match tokio::task::spawn_blocking(move || tls.check(now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "TLS certificate check failed; the current certificate stays")
            }
            Err(e) => tracing::warn!(error = %e, "TLS certificate check did not finish"),
        }
    }
}
