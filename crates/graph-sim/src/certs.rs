//! Certificates: the pre-registered app's password-protected `.pfx`, and the self-signed TLS
//! certificate the simulator serves HTTPS with.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use crate::error::SimError;

/// A key pair with its self-signed certificate.
pub struct CertKey {
    /// Private key.
    pub key: PKey<Private>,
    /// Certificate.
    pub cert: X509,
}

/// Creates an RSA-2048 key and a self-signed certificate for `cn`, valid for two years.
///
/// # Errors
/// OpenSSL failures.
pub fn self_signed(cn: &str, san_ip: bool) -> Result<CertKey, SimError> {
    let rsa = Rsa::generate(2048)?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let nb = Asn1Time::days_from_now(0)?;
    let na = Asn1Time::days_from_now(730)?;
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    if san_ip {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))?;
        b.append_extension(san)?;
    }
    b.sign(&key, MessageDigest::sha256())?;
    Ok(CertKey {
        key,
        cert: b.build(),
    })
}

/// Writes a password-protected PKCS#12 file holding `ck`.
///
/// # Errors
/// OpenSSL or I/O failures.
pub fn write_pfx(ck: &CertKey, password: &str, path: &Path) -> Result<(), SimError> {
    let pfx = Pkcs12::builder()
        .name("graph-sim app")
        .pkey(&ck.key)
        .cert(&ck.cert)
        .build2(password)?;
    std::fs::write(path, pfx.to_der()?).map_err(|e| SimError::Io(path.display().to_string(), e))
}

/// SHA-1 and SHA-256 thumbprints of a certificate's DER encoding.
///
/// # Errors
/// OpenSSL failures.
pub fn thumbprints(cert: &X509) -> Result<([u8; 20], [u8; 32]), SimError> {
    let der = cert.to_der()?;
    Ok((openssl::sha::sha1(&der), openssl::sha::sha256(&der)))
}
