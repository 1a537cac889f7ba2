//! `.pfx` loading: files made by the `openssl` command line (AES, 3DES/SHA1, `-legacy` RC2) and
//! by the openssl crate; wrong password, not PKCS#12, no key, expired, not yet valid, EC key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use backhome_graph::{Credential, CredentialError};
use openssl::pkcs12::Pkcs12;

const PASSWORD: &str = "Corr3ct horse;battery";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and self-signed certificate made by the command line.
fn cli_cert(dir: &Path, key_args: &[&str]) {
    let mut args = vec!["req", "-x509", "-newkey"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&[
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "30",
        "-nodes",
        "-subj",
        "/CN=Backhome CLI test",
    ]);
    openssl(dir, &args);
}

fn export(dir: &Path, name: &str, extra: &[&str]) -> Vec<u8> {
    let pass = format!("pass:{PASSWORD}");
    let mut args = vec![
        "pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem", "-out", name, "-passout",
        &pass,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn command_line_pfx_variants_load() {
    let dir = tempfile::tempdir().unwrap();
    cli_cert(dir.path(), &["rsa:2048"]);
    let variants: [(&str, &[&str]); 3] = [
        ("aes.pfx", &[]),
        (
            "3des.pfx",
            &[
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ],
        ),
        ("legacy.pfx", &["-legacy"]),
    ];
    for (name, extra) in variants {
        let der = export(dir.path(), name, extra);
        let cred =
            Credential::from_pkcs12_der(&der, PASSWORD).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            cred.subject().contains("Backhome CLI test"),
            "{name}: {}",
            cred.subject()
        );
        assert_eq!(cred.thumbprint_hex().len(), 40);
        let e = Credential::from_pkcs12_der(&der, "wrong").unwrap_err();
        assert!(matches!(e, CredentialError::WrongPassword), "{name}: {e:?}");
        assert!(e.to_string().contains("wrong password"));
        assert!(!e.to_string().contains(PASSWORD));
        let path = dir.path().join(name);
        Credential::from_pkcs12_file(&path, PASSWORD).unwrap();
    }
    let e = Credential::from_pkcs12_file(dir.path().join("missing.pfx"), PASSWORD).unwrap_err();
    assert!(matches!(e, CredentialError::Read { .. }), "{e:?}");
}

#[test]
fn broken_inputs_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    cli_cert(dir.path(), &["rsa:2048"]);
    let e = Credential::from_pkcs12_der(b"-----BEGIN CERTIFICATE-----\nnot a pfx", PASSWORD)
        .unwrap_err();
    assert!(matches!(e, CredentialError::NotPkcs12), "{e:?}");
    let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    assert!(matches!(
        Credential::from_pkcs12_der(&pem, PASSWORD),
        Err(CredentialError::NotPkcs12)
    ));

    let der = export(dir.path(), "nokey.pfx", &["-nokeys"]);
    let e = Credential::from_pkcs12_der(&der, PASSWORD).unwrap_err();
    assert!(matches!(e, CredentialError::NoPrivateKey), "{e:?}");
    assert!(e.to_string().contains("no private key"));

    let ec = tempfile::tempdir().unwrap();
    cli_cert(ec.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let der = export(ec.path(), "ec.pfx", &[]);
    let e = Credential::from_pkcs12_der(&der, PASSWORD).unwrap_err();
    assert!(matches!(e, CredentialError::KeyNotRsa { .. }), "{e:?}");
    assert!(e.to_string().contains("RSA"));
}

fn crate_pfx(days_from: i64, days_to: i64) -> Vec<u8> {
    let (key, cert) = common::key_and_cert(days_from, days_to);
    Pkcs12::builder()
        .name("backhome")
        .pkey(&key)
        .cert(&cert)
        .build2(PASSWORD)
        .unwrap()
        .to_der()
        .unwrap()
}

#[test]
fn validity_dates_are_checked() {
    let ok = Credential::from_pkcs12_der(&crate_pfx(-1, 30), PASSWORD).unwrap();
    assert!(ok.not_after() > ok.not_before());
    // A password file's trailing line break is forgiven.
    Credential::from_pkcs12_der(&crate_pfx(-1, 30), &format!("{PASSWORD}\r\n")).unwrap();

    let e = Credential::from_pkcs12_der(&crate_pfx(-30, -2), PASSWORD).unwrap_err();
    assert!(matches!(e, CredentialError::Expired { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("expired on 20") && text.contains("UTC"),
        "{text}"
    );

    let e = Credential::from_pkcs12_der(&crate_pfx(2, 30), PASSWORD).unwrap_err();
    assert!(matches!(e, CredentialError::NotYetValid { .. }), "{e:?}");
    assert!(e.to_string().contains("clock"));

    // An expired certificate can still be inspected (to show its dates) without the check.
    let cred = Credential::from_pkcs12_der_unchecked(&crate_pfx(-30, -2), PASSWORD).unwrap();
    assert!(cred.not_after() < time::OffsetDateTime::now_utc());
    assert!(!format!("{cred:?}").contains("PRIVATE"));
}

#[test]
fn key_must_match_certificate() {
    let (key, _) = common::key_and_cert(-1, 30);
    let (_, cert) = common::key_and_cert(-1, 30);
    let e = Credential::from_parts(key, cert).unwrap_err();
    assert!(matches!(e, CredentialError::KeyMismatch), "{e:?}");
}
