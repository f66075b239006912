//! `mesero tls init`: the local CA and the server certificate (rcgen,
//! ring).
//!
//! - The CA is made once (ECDSA P-256, valid [`CA_YEARS`] years, path
//!   length 0) and never renewed: tablets trust it once. A CA certificate
//!   whose key is missing is an error, never a reason to make a new CA.
//! - The server certificate is signed by the CA for the names of
//!   [`super::names::current`] and is valid [`SERVER_DAYS`] days (the most
//!   Apple accepts for a server certificate). [`ensure`] issues a new one
//!   (with a new key) when it is missing, when fewer than
//!   [`RENEW_BEFORE`] are left, when a name it should cover is missing
//!   (a new DHCP address, a renamed host), or when it no longer chains to
//!   the CA. Those checks are rustls's own verifier, run at "now + 30
//!   days" for each name.
//! - Files are written to a temporary file and renamed over the old one,
//!   so the daemon never reads half a certificate; keys are created with
//!   mode 0600, their directory 0700.
//!
//! The CA's subject is rebuilt from its key (`mesero local CA <id>`, the
//! id from the public key), so renewing needs only the CA's key, and two
//! restaurants' CAs on one tablet have different names.

use super::{TlsError, der, read_pem};
use crate::config::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::ServerCertVerifier as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Years the local CA is valid.
pub const CA_YEARS: i16 = 25;

/// Days a server certificate is valid.
pub const SERVER_DAYS: i64 = 397;

/// A server certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The CA was made now (the first run).
    pub ca_created: bool,
    /// Why a server certificate was issued, `None` if the one there was
    /// kept.
    pub issued: Option<String>,
    /// The names the server certificate is for.
    pub names: Vec<String>,
}

/// Makes the CA if there is none, and issues a server certificate for
/// `names` unless the one there covers them for [`RENEW_BEFORE`] more
/// (always with `force`). `now` is the time certificates start from.
pub fn ensure(
    files: &TlsFiles,
    names: &[String],
    now: SystemTime,
    force: bool,
) -> Result<Outcome, TlsError> {
    let (ca_key, ca_created) = ca(files, now)?;
    let ca_pem = read_pem(&files.ca_cert, "http.tls_ca_cert")?;
    let ca_der = super::first_cert("http.tls_ca_cert", &files.ca_cert, &ca_pem)?;
    let due = if force {
        Some("asked to (--force)".to_string())
    } else {
        renewal_reason(files, &ca_der, names, now)
    };
    let Some(reason) = due else {
        return Ok(Outcome {
            ca_created,
            issued: None,
            names: names.to_vec(),
        });
    };
    let (cert_pem, key_pem) = server(&ca_key, names, now)?;
    let cert_der = super::first_cert("http.tls_cert", &files.cert, &cert_pem)?;
    // The CA file and key belong together; a mismatch is a file replaced
    // by hand, and the tablets would refuse the new certificate.
    if let Err(e) = covers(&ca_der, &cert_der, names, now) {
        return Err(TlsError::new(
            "http.tls_ca_cert",
            format!(
                "{} is not the CA of http.tls_ca_key ({e}); restore the pair, or move both away to start a new CA (every tablet must then install it again)",
                files.ca_cert.display()
            ),
        ));
    }
    // The CA after the server's own certificate: clients that do not have
    // it yet can still show whom they are asked to trust.
    write(
        &files.cert,
        "http.tls_cert",
        format!("{cert_pem}{ca_pem}").as_bytes(),
        false,
    )?;
    write(&files.key, "http.tls_key", key_pem.as_bytes(), true)?;
    Ok(Outcome {
        ca_created,
        issued: Some(reason),
        names: names.to_vec(),
    })
}

/// Why the server certificate should be issued again, `None` while it
/// covers `names` under the CA for [`RENEW_BEFORE`] more.
pub fn renewal_reason(
    files: &TlsFiles,
    ca_der: &CertificateDer<'static>,
    names: &[String],
    now: SystemTime,
) -> Option<String> {
    if !files.cert.exists() || !files.key.exists() {
        return Some("there is none".into());
    }
    let cert = match read_pem(&files.cert, "http.tls_cert")
        .and_then(|pem| super::first_cert("http.tls_cert", &files.cert, &pem))
    {
        Ok(cert) => cert,
        Err(e) => return Some(format!("the one there cannot be read ({e})")),
    };
    covers(ca_der, &cert, names, now + RENEW_BEFORE).err()
}

/// Whether `cert` chains to `ca` and is valid at `at` for every name; the
/// error says which check failed.
pub fn covers(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    names: &[String],
    at: SystemTime,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| format!("the CA cannot be used: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("the CA cannot be used: {e}"))?;
    let at = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970".to_string())?;
    for name in names {
        let server = ServerName::try_from(name.as_str())
            .map_err(|_| format!("{name:?} is not a host name or address"))?
            .to_owned();
        verifier
            .verify_server_cert(cert, &[], &server, &[], UnixTime::since_unix_epoch(at))
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. },
                ) => format!("it does not cover {name}"),
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                    ..
                }) => "it expires within 30 days".to_string(),
                other => format!("it does not verify under the CA: {other}"),
            })?;
    }
    Ok(())
}

/// The CA's key, making the CA first when neither of its files exists.
fn ca(files: &TlsFiles, now: SystemTime) -> Result<(KeyPair, bool), TlsError> {
    match (files.ca_cert.exists(), files.ca_key.exists()) {
        (true, true) => {
            let pem = read_pem(&files.ca_key, "http.tls_ca_key")?;
            let key = KeyPair::from_pem(&pem).map_err(|e| {
                TlsError::new(
                    "http.tls_ca_key",
                    format!("{} is not a private key: {e}", files.ca_key.display()),
                )
            })?;
            Ok((key, false))
        }
        (true, false) => Err(TlsError::new(
            "http.tls_ca_key",
            format!(
                "{} is missing but the CA certificate {} is there; the CA is never made again: restore its key (or move the certificate away to start a new CA, which every tablet must install again)",
                files.ca_key.display(),
                files.ca_cert.display()
            ),
        )),
        (false, true) => Err(TlsError::new(
            "http.tls_ca_cert",
            format!(
                "{} is missing but the CA key {} is there; restore it (or move the key away to start a new CA)",
                files.ca_cert.display(),
                files.ca_key.display()
            ),
        )),
        (false, false) => {
            let key = KeyPair::generate().map_err(|e| rcgen_error("http.tls_ca_key", e))?;
            let mut params = ca_params(&key);
            set_validity(&mut params, now, i64::from(CA_YEARS) * 365)?;
            let cert = params
                .self_signed(&key)
                .map_err(|e| rcgen_error("http.tls_ca_cert", e))?;
            write(
                &files.ca_key,
                "http.tls_ca_key",
                key.serialize_pem().as_bytes(),
                true,
            )?;
            write(
                &files.ca_cert,
                "http.tls_ca_cert",
                cert.pem().as_bytes(),
                false,
            )?;
            Ok((key, true))
        }
    }
}

/// The CA's subject and extensions, the same every time for one key.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let id = Sha256::digest(key.subject_public_key_info());
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mesero");
    dn.push(
        DnType::CommonName,
        format!("mesero local CA {}", hex::encode(&id[..4])),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new server key and its certificate for `names`, signed by the CA.
fn server(
    ca_key: &KeyPair,
    names: &[String],
    now: SystemTime,
) -> Result<(String, String), TlsError> {
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| rcgen_error("http.tls_names", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mesero");
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "mesero".into()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, SERVER_DAYS)?;
    let key = KeyPair::generate().map_err(|e| rcgen_error("http.tls_key", e))?;
    let issuer = Issuer::new(ca_params(ca_key), ca_key);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| rcgen_error("http.tls_cert", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The date (year, month, day, UTC) `days` after (or before) that of
/// `now`, for [`rcgen::date_time_ymd`] (midnight UTC).
fn day(now: SystemTime, days: i64) -> Result<(i32, u8, u8), TlsError> {
    let bad = || TlsError::new("http.tls_cert", "the system clock is out of range");
    let today = jiff::Timestamp::try_from(now)
        .map_err(|_| bad())?
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let date = today
        .checked_add(jiff::Span::new().days(days))
        .map_err(|_| bad())?;
    let month = u8::try_from(date.month()).map_err(|_| bad())?;
    let dom = u8::try_from(date.day()).map_err(|_| bad())?;
    Ok((i32::from(date.year()), month, dom))
}

/// Valid from the day before `now` (a tablet whose clock is a little
/// behind still accepts it) until `days` after it, midnight UTC.
fn set_validity(
    params: &mut CertificateParams,
    now: SystemTime,
    days: i64,
) -> Result<(), TlsError> {
    let (y, m, d) = day(now, -1)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(now, days)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(())
}

fn rcgen_error(key: &'static str, e: rcgen::Error) -> TlsError {
    TlsError::new(key, format!("cannot make the certificate: {e}"))
}

/// Writes `bytes` to `path` through a temporary file renamed over it;
/// `secret` files get mode 0600. The directory is made (0700) if needed.
fn write(path: &Path, key: &'static str, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let fail = |what: &str, e: std::io::Error| {
        TlsError::new(key, format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("create the directory of", e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| fail("write", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))
}

/// The validity of the first certificate in `pem`.
pub fn expiry(der_cert: &CertificateDer<'_>) -> Option<SystemTime> {
    der::validity(der_cert).map(|(_, not_after)| not_after)
}
