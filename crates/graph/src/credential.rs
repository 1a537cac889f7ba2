//! The application's certificate credential, loaded from a password-protected `.pfx`.

use std::path::Path;
use std::sync::OnceLock;

use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::provider::Provider;
use openssl::x509::X509;
use time::OffsetDateTime;

use crate::error::CredentialError;

/// A certificate with its RSA private key, as registered on the Entra application.
///
/// `Debug` shows only the certificate's subject and thumbprint, never the key.
#[derive(Clone)]
pub struct Credential {
    key: PKey<Private>,
    cert: X509,
    sha1: [u8; 20],
    sha256: [u8; 32],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    subject: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint_hex())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Loads OpenSSL's legacy provider once (RC2/3DES `.pfx` files need it); `None` if unavailable.
fn legacy_provider() -> Option<&'static Provider> {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY
        .get_or_init(|| match Provider::try_load(None, "legacy", true) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!("OpenSSL legacy provider not available: {e}");
                None
            }
        })
        .as_ref()
}

fn openssl_reasons(stack: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = stack
        .errors()
        .iter()
        .map(|e| e.reason().unwrap_or("unknown error").to_owned())
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".to_owned()
    } else {
        reasons.join("; ")
    }
}

fn asn1_to_datetime(t: &openssl::asn1::Asn1TimeRef) -> Result<OffsetDateTime, CredentialError> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(|e| CredentialError::Openssl {
        detail: openssl_reasons(&e),
    })?;
    let diff = epoch.diff(t).map_err(|e| CredentialError::Openssl {
        detail: openssl_reasons(&e),
    })?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CredentialError::Openssl {
        detail: format!("certificate date out of range: {e}"),
    })
}

/// Formats a date for error messages: `2025-01-31 12:00:00 UTC`.
pub(crate) fn human_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| t.to_string())
}

impl Credential {
    /// Reads a `.pfx` file and checks it as [`Credential::from_pkcs12_der`] does.
    pub fn from_pkcs12_file(
        path: impl AsRef<Path>,
        password: &str,
    ) -> Result<Self, CredentialError> {
        let path = path.as_ref();
        let der = std::fs::read(path).map_err(|source| CredentialError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pkcs12_der(&der, password)
    }

    /// Parses a PKCS#12 blob (modern AES or legacy RC2/3DES), and checks that it holds an RSA key
    /// that matches its certificate and that the certificate is valid now.
    pub fn from_pkcs12_der(der: &[u8], password: &str) -> Result<Self, CredentialError> {
        let cred = Self::from_pkcs12_der_unchecked(der, password)?;
        cred.check_validity_at(OffsetDateTime::now_utc())?;
        Ok(cred)
    }

    /// As [`Credential::from_pkcs12_der`], without the validity-date check.
    /// A password read from a file often ends with a line break: if the password as given is
    /// wrong, it is tried once more without trailing line breaks.
    pub fn from_pkcs12_der_unchecked(der: &[u8], password: &str) -> Result<Self, CredentialError> {
        match Self::parse_pkcs12(der, password) {
            Err(CredentialError::WrongPassword)
                if password.trim_end_matches(['\r', '\n']) != password =>
            {
                Self::parse_pkcs12(der, password.trim_end_matches(['\r', '\n']))
            }
            other => other,
        }
    }

    fn parse_pkcs12(der: &[u8], password: &str) -> Result<Self, CredentialError> {
        let _ = legacy_provider();
        let p12 = Pkcs12::from_der(der).map_err(|_| CredentialError::NotPkcs12)?;
        let parsed = p12.parse2(password).map_err(|e| {
            let reasons = openssl_reasons(&e);
            let lower = reasons.to_ascii_lowercase();
            if lower.contains("mac verify failure") || lower.contains("mac verify error") {
                CredentialError::WrongPassword
            } else if lower.contains("unsupported") || lower.contains("fetch failed") {
                CredentialError::Unsupported { detail: reasons }
            } else if lower.contains("decrypt") || lower.contains("bad decrypt") {
                // Files without a MAC report a wrong password as a decryption failure.
                CredentialError::WrongPassword
            } else {
                CredentialError::Openssl { detail: reasons }
            }
        })?;
        let key = parsed.pkey.ok_or(CredentialError::NoPrivateKey)?;
        let cert = parsed.cert.ok_or(CredentialError::NoCertificate)?;
        Self::from_parts(key, cert)
    }

    /// Builds a credential from a key and a certificate (e.g. from PEM files).
    pub fn from_parts(key: PKey<Private>, cert: X509) -> Result<Self, CredentialError> {
        let ossl = |e: openssl::error::ErrorStack| CredentialError::Openssl {
            detail: openssl_reasons(&e),
        };
        if key.id() != Id::RSA {
            let kind = match key.id() {
                Id::EC => "an elliptic-curve (EC) key".to_owned(),
                Id::ED25519 => "an Ed25519 key".to_owned(),
                Id::DSA => "a DSA key".to_owned(),
                other => format!("a key of type {}", other.as_raw()),
            };
            return Err(CredentialError::KeyNotRsa { kind });
        }
        let public = cert.public_key().map_err(ossl)?;
        if !public.public_eq(&key) {
            return Err(CredentialError::KeyMismatch);
        }
        let sha1_digest = cert.digest(MessageDigest::sha1()).map_err(ossl)?;
        let sha256_digest = cert.digest(MessageDigest::sha256()).map_err(ossl)?;
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(&sha1_digest);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&sha256_digest);
        let subject = cert
            .subject_name()
            .entries()
            .map(|e| {
                let name = e.object().nid().short_name().unwrap_or("?");
                let value = e.data().to_string().unwrap_or_default();
                format!("{name}={value}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            not_before: asn1_to_datetime(cert.not_before())?,
            not_after: asn1_to_datetime(cert.not_after())?,
            key,
            cert,
            sha1,
            sha256,
            subject,
        })
    }

    /// Fails if the certificate is expired or not yet valid at `now`.
    pub fn check_validity_at(&self, now: OffsetDateTime) -> Result<(), CredentialError> {
        let dates = || (human_date(self.not_before), human_date(self.not_after));
        if now > self.not_after {
            let (not_before, not_after) = dates();
            return Err(CredentialError::Expired {
                not_before,
                not_after,
            });
        }
        if now < self.not_before {
            let (not_before, not_after) = dates();
            return Err(CredentialError::NotYetValid {
                not_before,
                not_after,
            });
        }
        Ok(())
    }

    /// The private key.
    #[must_use]
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// The certificate.
    #[must_use]
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    /// SHA-1 thumbprint of the certificate's DER (what `x5t` carries).
    #[must_use]
    pub fn sha1_thumbprint(&self) -> [u8; 20] {
        self.sha1
    }

    /// SHA-256 thumbprint of the certificate's DER (what `x5t#S256` carries).
    #[must_use]
    pub fn sha256_thumbprint(&self) -> [u8; 32] {
        self.sha256
    }

    /// Upper-case hex SHA-1 thumbprint, as the Entra portal shows it.
    #[must_use]
    pub fn thumbprint_hex(&self) -> String {
        self.sha1.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// Start of validity.
    #[must_use]
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    #[must_use]
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The certificate's subject, `CN=…, O=…`.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }
}
