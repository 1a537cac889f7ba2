//! The app's certificate, made on the NAS: an RSA key that never leaves it, a self-signed
//! certificate, the password-protected `.pfx` the task keeps (random password), the `.cer` the
//! admin uploads by hand, and what a stored `.pfx` says about its expiry.

use backhome_graph::Credential;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::error::RegisterError;
use crate::task::Credentials;

/// Default validity of a certificate made here, in days (two years).
pub const DEFAULT_DAYS: u32 = 730;

/// A certificate expiring within this many days is flagged on its task.
pub const WARN_DAYS: i64 = 30;

/// Namespace of key ids derived from certificate thumbprints (a fixed, random UUID).
const KEY_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d1f_23c4_8b0e_4f7a_9a51_0c3e_7b2d_44e1);

/// A key pair and self-signed certificate made on the NAS.
#[derive(Clone)]
pub struct GeneratedCert {
    /// The password-protected PKCS#12 file holding key and certificate.
    pub pfx: Vec<u8>,
    /// Its random password.
    pub password: String,
    /// The certificate alone (DER), what Entra ID needs.
    pub cer_der: Vec<u8>,
    /// Upper-case hex SHA-1 thumbprint, as the Entra admin center shows it.
    pub thumbprint: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The key id the certificate gets on the application (derived from its thumbprint).
    pub key_id: uuid::Uuid,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("thumbprint", &self.thumbprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn ossl(e: openssl::error::ErrorStack) -> RegisterError {
    RegisterError::Certificate(e.to_string())
}

/// The key id of a certificate with this SHA-1 thumbprint on applications registered here.
#[must_use]
pub fn key_id_for(sha1: &[u8]) -> uuid::Uuid {
    uuid::Uuid::new_v5(&KEY_ID_NAMESPACE, sha1)
}

/// A random password for a `.pfx` (32 characters, URL-safe base64 of 24 random bytes).
///
/// # Errors
/// The system's random source failed.
pub fn random_password() -> Result<String, RegisterError> {
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw).map_err(ossl)?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// Makes an RSA-2048 key and a self-signed certificate for `common_name`, valid from an hour ago
/// for `days` days, packed in a `.pfx` with a random password. CPU-bound (key generation):
/// call it from a blocking thread.
///
/// # Errors
/// OpenSSL failures.
pub fn generate(common_name: &str, days: u32) -> Result<GeneratedCert, RegisterError> {
    let key = PKey::from_rsa(Rsa::generate(2048).map_err(ossl)?).map_err(ossl)?;
    let mut name = X509NameBuilder::new().map_err(ossl)?;
    name.append_entry_by_text("CN", common_name).map_err(ossl)?;
    let name = name.build();
    let mut b = X509::builder().map_err(ossl)?;
    b.set_version(2).map_err(ossl)?;
    let mut serial = BigNum::new().map_err(ossl)?;
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(ossl)?;
    let serial = serial.to_asn1_integer().map_err(ossl)?;
    b.set_serial_number(&serial).map_err(ossl)?;
    b.set_subject_name(&name).map_err(ossl)?;
    b.set_issuer_name(&name).map_err(ossl)?;
    b.set_pubkey(&key).map_err(ossl)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let not_before = Asn1Time::from_unix(now - 3600).map_err(ossl)?;
    let not_after = Asn1Time::days_from_now(days).map_err(ossl)?;
    b.set_not_before(&not_before).map_err(ossl)?;
    b.set_not_after(&not_after).map_err(ossl)?;
    b.append_extension(BasicConstraints::new().critical().build().map_err(ossl)?)
        .map_err(ossl)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .map_err(ossl)?,
    )
    .map_err(ossl)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .client_auth()
            .build()
            .map_err(ossl)?,
    )
    .map_err(ossl)?;
    b.sign(&key, MessageDigest::sha256()).map_err(ossl)?;
    let cert = b.build();
    let password = random_password()?;
    let pfx = Pkcs12::builder()
        .name(common_name)
        .pkey(&key)
        .cert(&cert)
        .build2(&password)
        .map_err(ossl)?
        .to_der()
        .map_err(ossl)?;
    let credential = Credential::from_pkcs12_der(&pfx, &password)?;
    let cer_der = cert.to_der().map_err(ossl)?;
    Ok(GeneratedCert {
        pfx,
        password,
        thumbprint: credential.thumbprint_hex(),
        not_after: credential.not_after(),
        key_id: key_id_for(&credential.sha1_thumbprint()),
        cer_der,
    })
}

impl GeneratedCert {
    /// The task credentials (the `.pfx` and its password).
    #[must_use]
    pub fn credentials(&self) -> Credentials {
        Credentials {
            pfx: self.pfx.clone(),
            password: self.password.clone(),
        }
    }

    /// The credential for signing assertions and proofs.
    ///
    /// # Errors
    /// The `.pfx` cannot be read back (never for one made here).
    pub fn credential(&self) -> Result<Credential, RegisterError> {
        Ok(Credential::from_pkcs12_der(&self.pfx, &self.password)?)
    }

    /// The certificate as PEM (a `.cer` file in Base-64 form, which the Entra admin center
    /// accepts as well as DER).
    #[must_use]
    pub fn cer_pem(&self) -> String {
        pem("CERTIFICATE", &self.cer_der)
    }

    /// The `keyCredential` object that registers this certificate on an application.
    #[must_use]
    pub fn key_credential(&self, display_name: &str) -> Value {
        json!({
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": STANDARD.encode(&self.cer_der),
            "keyId": self.key_id.to_string(),
            "displayName": display_name,
        })
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What a `.pfx` holds, for the wizard and the task page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Upper-case hex SHA-1 thumbprint.
    pub thumbprint: String,
    /// `CN=…`.
    pub subject: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// Reads an imported `.pfx` (from Synology's or Microsoft's script, or made here) and checks it
/// as a task would use it: an RSA key matching its certificate, the right password, valid now.
///
/// # Errors
/// Wrong password, not a PKCS#12 file, not RSA, expired: each says what to do.
pub fn inspect_pfx(pfx: &[u8], password: &str) -> Result<CertInfo, RegisterError> {
    let c = Credential::from_pkcs12_der(pfx, password)?;
    Ok(CertInfo {
        thumbprint: c.thumbprint_hex(),
        subject: c.subject().to_owned(),
        not_before: c.not_before(),
        not_after: c.not_after(),
    })
}

/// The certificate's `.cer` (PEM) from a `.pfx`, for uploading it in the Entra admin center.
///
/// # Errors
/// The `.pfx` cannot be opened.
pub fn cer_from_pfx(pfx: &[u8], password: &str) -> Result<String, RegisterError> {
    let c = Credential::from_pkcs12_der_unchecked(pfx, password)?;
    Ok(pem("CERTIFICATE", &c.certificate().to_der().map_err(ossl)?))
}

/// How a task's certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// More than [`WARN_DAYS`] days left.
    Valid,
    /// Expires within [`WARN_DAYS`] days: renew it.
    ExpiresSoon,
    /// Expired: backups fail until it is renewed.
    Expired,
}

/// A task certificate's expiry, as the task page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertStatus {
    /// Upper-case hex SHA-1 thumbprint.
    pub thumbprint: String,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// Valid, expiring soon, or expired.
    pub state: CertState,
}

/// The expiry of a task's certificate at `now`.
///
/// # Errors
/// The stored `.pfx` cannot be opened.
pub fn status(creds: &Credentials, now: OffsetDateTime) -> Result<CertStatus, RegisterError> {
    let c = Credential::from_pkcs12_der_unchecked(&creds.pfx, &creds.password)?;
    let left = c.not_after() - now;
    let days_left = left.whole_days();
    let state = if left.is_negative() {
        CertState::Expired
    } else if days_left < WARN_DAYS {
        CertState::ExpiresSoon
    } else {
        CertState::Valid
    };
    Ok(CertStatus {
        thumbprint: c.thumbprint_hex(),
        not_after: c.not_after(),
        days_left,
        state,
    })
}

/// A proof of possession for `addKey`/`removeKey`: a JWT signed (RS256) with `credential`, with
/// `aud` 00000002-0000-0000-c000-000000000000, `iss` the application's object id, valid ten
/// minutes.
///
/// # Errors
/// Signing failed.
pub fn proof(credential: &Credential, object_id: &str) -> Result<String, RegisterError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": URL_SAFE_NO_PAD.encode(credential.sha1_thumbprint()),
    });
    let claims = json!({
        "aud": "00000002-0000-0000-c000-000000000000",
        "iss": object_id,
        "nbf": now,
        "exp": now + 600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), credential.key()).map_err(ossl)?;
    signer.update(input.as_bytes()).map_err(ossl)?;
    let sig = signer.sign_to_vec().map_err(ossl)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_pfx_opens_with_its_password_only() {
        let g = generate("Backhome test", 30).unwrap();
        let info = inspect_pfx(&g.pfx, &g.password).unwrap();
        assert_eq!(info.thumbprint, g.thumbprint);
        assert_eq!(info.subject, "CN=Backhome test");
        assert!(inspect_pfx(&g.pfx, "wrong").is_err());
        assert_eq!(g.password.len(), 32);
        let other = generate("Backhome test", 30).unwrap();
        assert_ne!(other.password, g.password);
        assert_ne!(other.key_id, g.key_id);
        assert_eq!(
            g.key_id,
            key_id_for(&g.credential().unwrap().sha1_thumbprint())
        );
        let pem = g.cer_pem();
        let cert = X509::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.to_der().unwrap(), g.cer_der);
        assert_eq!(cer_from_pfx(&g.pfx, &g.password).unwrap(), pem);
    }

    #[test]
    fn expiry_states() {
        let g = generate("Backhome test", 20).unwrap();
        let now = OffsetDateTime::now_utc();
        let s = status(&g.credentials(), now).unwrap();
        assert_eq!(s.state, CertState::ExpiresSoon);
        assert!((18..=20).contains(&s.days_left), "{s:?}");
        let later = now + time::Duration::days(25);
        assert_eq!(
            status(&g.credentials(), later).unwrap().state,
            CertState::Expired
        );
        let g = generate("Backhome test", 400).unwrap();
        assert_eq!(
            status(&g.credentials(), now).unwrap().state,
            CertState::Valid
        );
    }
}
