//! Secrets at rest: the app certificate and its password, sealed with a key kept in the data dir.
//!
//! The key is 32 random bytes in `secret.key` (mode 0600, created on first use). Each sealed value is
//! `BHS1 ‖ nonce(12) ‖ tag(16) ‖ AES-256-GCM ciphertext`. Sealed values never appear in logs or API answers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

const MAGIC: &[u8; 4] = b"BHS1";
const KEY_FILE: &str = "secret.key";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or created.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The key file exists but is not a key.
    #[error("secret key file {0} is damaged (expected 32 bytes)")]
    BadKey(PathBuf),
    /// Sealed data is not in the expected format or was altered.
    #[error("a stored secret is damaged or was sealed with another key")]
    Damaged,
    /// OpenSSL failed.
    #[error("encryption failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// Seals and opens secrets with the data dir's key.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Loads the key from `dir`, creating it (mode 0600) when there is none.
    ///
    /// # Errors
    /// Fails when the key file cannot be read, created, or is damaged.
    pub fn open_or_create(dir: &Path) -> Result<Self, SecretError> {
        let path = dir.join(KEY_FILE);
        let kerr = |source| SecretError::KeyFile {
            path: path.clone(),
            source,
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| SecretError::BadKey(path.clone()))?;
                let mode = fs::metadata(&path).map_err(kerr)?.permissions().mode();
                if mode & 0o077 != 0 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(kerr)?;
                }
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                openssl::rand::rand_bytes(&mut key)?;
                let tmp = dir.join(format!("{KEY_FILE}.tmp"));
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(kerr)?;
                f.write_all(&key).map_err(kerr)?;
                f.sync_all().map_err(kerr)?;
                fs::rename(&tmp, &path).map_err(kerr)?;
                Ok(Self { key })
            }
            Err(e) => Err(kerr(e)),
        }
    }

    /// Seals `plain`.
    ///
    /// # Errors
    /// Fails only when OpenSSL fails.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            MAGIC,
            plain,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(4 + 12 + 16 + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Sealer::seal`] sealed.
    ///
    /// # Errors
    /// [`SecretError::Damaged`] when the data was altered or sealed with another key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 32 || &sealed[..4] != MAGIC {
            return Err(SecretError::Damaged);
        }
        let (nonce, rest) = sealed[4..].split_at(12);
        let (tag, ct) = rest.split_at(16);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            MAGIC,
            ct,
            tag,
        )
        .map_err(|_| SecretError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::open_or_create(dir.path()).unwrap();
        let sealed = s.seal(b"Secr3t!pw").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"Secr3t!pw"));
        assert_eq!(s.open(&sealed).unwrap(), b"Secr3t!pw");
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same key is loaded again.
        let again = Sealer::open_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"Secr3t!pw");
    }

    #[test]
    fn tampering_and_other_keys_are_detected() {
        let a = Sealer::open_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let b = Sealer::open_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let mut sealed = a.seal(b"hello").unwrap();
        assert!(matches!(b.open(&sealed), Err(SecretError::Damaged)));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(a.open(&sealed), Err(SecretError::Damaged)));
        assert!(matches!(a.open(b"short"), Err(SecretError::Damaged)));
    }

    #[test]
    fn damaged_key_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"nope").unwrap();
        assert!(matches!(
            Sealer::open_or_create(dir.path()),
            Err(SecretError::BadKey(_))
        ));
    }
}
