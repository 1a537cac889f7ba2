//! Blob encoding: hashing, compression and optional encryption.
//!
//! Without encryption a blob id is BLAKE3 of the plain bytes. With encryption the repository has
//! a random master key (wrapped by a passphrase through Argon2id in `key.json`): blob ids are
//! keyed BLAKE3 (so ids reveal nothing about content) and blobs are sealed with
//! XChaCha20-Poly1305, a random nonce each, the blob id as associated data. The catalog is
//! encrypted with SQLCipher under a key derived from the master keys (see `catalog_crypt`).

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::dict::{DICT_BLOB_LIMIT, Dict, Dicts};
use crate::error::{IoContext, Result, StoreError};
use crate::id::{BlobId, ContentHash, hex, unhex};

/// Flag: the stored bytes are zstd-compressed.
pub(crate) const FLAG_COMPRESSED: u8 = 1;
/// Flag: the stored bytes are sealed with the repository key.
pub(crate) const FLAG_ENCRYPTED: u8 = 2;
/// Flag: compressed with one of the repository's dictionaries (its id is in the zstd frame).
pub(crate) const FLAG_DICT: u8 = 4;
const NONCE_LEN: usize = 24;

/// Cost of the passphrase key derivation (Argon2id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a second on a small NAS, within its memory.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    salt: String,
    nonce: String,
    wrapped: String,
}

/// The repository's secret keys.
#[derive(Clone)]
pub(crate) struct Keys {
    seal: [u8; 32],
    id: [u8; 32],
}

impl Keys {
    pub(crate) fn random() -> Self {
        Self {
            seal: rand::random(),
            id: rand::random(),
        }
    }

    fn derive_wrapping_key(pass: &str, salt: &[u8], kdf: KdfParams) -> Result<[u8; 32]> {
        let params = Params::new(kdf.memory_kib, kdf.iterations, 1, Some(32))
            .map_err(|e| StoreError::BadKeyFile(format!("argon2 parameters: {e}")))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(pass.as_bytes(), salt, &mut out)
            .map_err(|e| StoreError::BadKeyFile(format!("argon2: {e}")))?;
        Ok(out)
    }

    /// The raw SQLCipher key of the catalog, derived from the master keys (never stored).
    pub(crate) fn catalog_key(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("backhome 2026 catalog encryption key v1");
        h.update(&self.seal);
        h.update(&self.id);
        *h.finalize().as_bytes()
    }

    /// Writes the keys to `path`, wrapped by `pass`.
    pub(crate) fn write(&self, path: &Path, pass: &str, kdf: KdfParams) -> Result<()> {
        let salt: [u8; 16] = rand::random();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let wk = Self::derive_wrapping_key(pass, &salt, kdf)?;
        let mut plain = [0u8; 64];
        plain[..32].copy_from_slice(&self.seal);
        plain[32..].copy_from_slice(&self.id);
        let wrapped = XChaCha20Poly1305::new((&wk).into())
            .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| StoreError::BadKeyFile("cannot wrap the key".into()))?;
        let kf = KeyFile {
            kdf: "argon2id".into(),
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            salt: hex(&salt),
            nonce: hex(&nonce),
            wrapped: hex(&wrapped),
        };
        let json =
            serde_json::to_vec_pretty(&kf).map_err(|e| StoreError::BadKeyFile(e.to_string()))?;
        crate::fsutil::write_atomic(path, &json)
    }

    /// Reads the keys from `path` with `pass`.
    pub(crate) fn read(path: &Path, pass: &str) -> Result<Self> {
        let bytes = std::fs::read(path).at(path)?;
        let kf: KeyFile =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadKeyFile(e.to_string()))?;
        if kf.kdf != "argon2id" {
            return Err(StoreError::BadKeyFile(format!("unknown kdf {}", kf.kdf)));
        }
        let bad = |what: &str| StoreError::BadKeyFile(format!("bad {what}"));
        let salt = unhex(&kf.salt).ok_or_else(|| bad("salt"))?;
        let nonce = unhex(&kf.nonce)
            .filter(|n| n.len() == NONCE_LEN)
            .ok_or_else(|| bad("nonce"))?;
        let wrapped = unhex(&kf.wrapped).ok_or_else(|| bad("wrapped key"))?;
        let kdf = KdfParams {
            memory_kib: kf.memory_kib,
            iterations: kf.iterations,
        };
        let wk = Self::derive_wrapping_key(pass, &salt, kdf)?;
        let plain = XChaCha20Poly1305::new((&wk).into())
            .decrypt(XNonce::from_slice(&nonce), wrapped.as_slice())
            .map_err(|_| StoreError::WrongPassphrase)?;
        if plain.len() != 64 {
            return Err(bad("key length"));
        }
        let mut k = Self {
            seal: [0; 32],
            id: [0; 32],
        };
        k.seal.copy_from_slice(&plain[..32]);
        k.id.copy_from_slice(&plain[32..]);
        Ok(k)
    }
}

/// How blobs are hashed, compressed and sealed in one repository.
#[derive(Clone)]
pub(crate) struct Codec {
    keys: Option<Keys>,
    level: i32,
    /// Shared by every clone: a dictionary trained by the writer is used by the sealing thread
    /// and found by readers of the same repository.
    dicts: std::sync::Arc<Dicts>,
}

/// A blob ready to be appended to a pack.
pub(crate) struct Sealed {
    pub flags: u8,
    pub bytes: Vec<u8>,
}

impl Codec {
    pub(crate) fn new(keys: Option<Keys>) -> Self {
        Self {
            keys,
            level: 3,
            dicts: std::sync::Arc::default(),
        }
    }

    /// The same codec with the dictionaries of the repository at `root`.
    pub(crate) fn with_dicts(mut self, root: &Path) -> Self {
        self.dicts = std::sync::Arc::new(Dicts::in_repository(root));
        self
    }

    pub(crate) fn dicts(&self) -> &Dicts {
        &self.dicts
    }

    pub(crate) fn level(&self) -> i32 {
        self.level
    }

    /// The same codec with zstd `level`.
    pub(crate) fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// The catalog's SQLCipher key (`None` when the repository is not encrypted).
    pub(crate) fn catalog_key(&self) -> Option<[u8; 32]> {
        self.keys.as_ref().map(Keys::catalog_key)
    }

    /// A hasher for blob ids and content hashes.
    pub(crate) fn hasher(&self) -> blake3::Hasher {
        match &self.keys {
            Some(k) => blake3::Hasher::new_keyed(&k.id),
            None => blake3::Hasher::new(),
        }
    }

    pub(crate) fn blob_id(&self, data: &[u8]) -> BlobId {
        let mut h = self.hasher();
        h.update(data);
        BlobId(*h.finalize().as_bytes())
    }

    pub(crate) fn content_hash(h: &blake3::Hasher) -> ContentHash {
        ContentHash(*h.finalize().as_bytes())
    }

    /// Compresses (when it helps; small blobs with the current dictionary) and seals `raw`.
    pub(crate) fn seal(&self, id: &BlobId, raw: &[u8]) -> Result<Sealed> {
        let dict = (raw.len() <= DICT_BLOB_LIMIT)
            .then(|| self.dicts.current())
            .flatten();
        self.seal_with(id, raw, dict.as_deref())
    }

    /// [`Codec::seal`] without a dictionary (for what must be readable without one).
    pub(crate) fn seal_plain(&self, id: &BlobId, raw: &[u8]) -> Result<Sealed> {
        self.seal_with(id, raw, None)
    }

    fn seal_with(&self, id: &BlobId, raw: &[u8], dict: Option<&Dict>) -> Result<Sealed> {
        let mut flags = 0;
        let zstd_err = |e: std::io::Error| StoreError::Invalid(format!("zstd: {e}"));
        let compressed = match dict {
            Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(&d.enc)
                .and_then(|mut c| c.compress(raw))
                .map_err(zstd_err)?,
            None => zstd::bulk::compress(raw, self.level).map_err(zstd_err)?,
        };
        let body = if compressed.len() + 16 < raw.len() {
            flags |= FLAG_COMPRESSED;
            if dict.is_some() {
                flags |= FLAG_DICT;
            }
            compressed
        } else {
            raw.to_vec()
        };
        let Some(k) = &self.keys else {
            return Ok(Sealed { flags, bytes: body });
        };
        flags |= FLAG_ENCRYPTED;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = XChaCha20Poly1305::new((&k.seal).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: &id.0,
                },
            )
            .map_err(|_| StoreError::Invalid("encryption failed".into()))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ok(Sealed { flags, bytes })
    }

    /// Opens stored bytes back into the plain blob and checks its id. The error is a
    /// human-readable reason.
    pub(crate) fn open(
        &self,
        id: &BlobId,
        flags: u8,
        raw_len: usize,
        stored: &[u8],
    ) -> std::result::Result<Vec<u8>, String> {
        let body: std::borrow::Cow<'_, [u8]> = if flags & FLAG_ENCRYPTED != 0 {
            let Some(k) = &self.keys else {
                return Err("blob is encrypted but the repository has no key".into());
            };
            if stored.len() < NONCE_LEN {
                return Err("sealed blob too short".into());
            }
            let (nonce, ct) = stored.split_at(NONCE_LEN);
            XChaCha20Poly1305::new((&k.seal).into())
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: &id.0,
                    },
                )
                .map_err(|_| "authentication failed (bytes altered)".to_string())?
                .into()
        } else {
            stored.into()
        };
        let raw = if flags & FLAG_DICT != 0 {
            let dict_id = zstd::zstd_safe::get_dict_id_from_frame(&body)
                .ok_or("compressed with a dictionary, but the frame names none")?;
            let d = self.dict(dict_id.get())?;
            zstd::bulk::Decompressor::with_prepared_dictionary(&d.dec)
                .and_then(|mut z| z.decompress(&body, raw_len))
                .map_err(|e| format!("zstd: {e}"))?
        } else if flags & FLAG_COMPRESSED != 0 {
            zstd::bulk::decompress(&body, raw_len).map_err(|e| format!("zstd: {e}"))?
        } else {
            body.into_owned()
        };
        if raw.len() != raw_len {
            return Err(format!("length {} instead of {raw_len}", raw.len()));
        }
        if self.blob_id(&raw) != *id {
            return Err("content does not hash to its id".into());
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_plain_and_encrypted() {
        for codec in [Codec::new(None), Codec::new(Some(Keys::random()))] {
            for data in [vec![], vec![7u8; 100_000], b"hello world".to_vec()] {
                let id = codec.blob_id(&data);
                let s = codec.seal(&id, &data).unwrap();
                assert_eq!(
                    codec.open(&id, s.flags, data.len(), &s.bytes).unwrap(),
                    data
                );
                let mut bad = s.bytes.clone();
                if let Some(b) = bad.last_mut() {
                    *b ^= 1;
                    assert!(codec.open(&id, s.flags, data.len(), &bad).is_err());
                }
            }
        }
    }

    #[test]
    fn keyed_ids_differ_from_plain_ids() {
        let k = Codec::new(Some(Keys::random()));
        assert_ne!(k.blob_id(b"x"), BlobId::of(b"x"));
        assert_eq!(Codec::new(None).blob_id(b"x"), BlobId::of(b"x"));
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.json");
        let kdf = KdfParams {
            memory_kib: 1024,
            iterations: 1,
        };
        let k = Keys::random();
        k.write(&p, "right", kdf).unwrap();
        assert_eq!(Keys::read(&p, "right").unwrap().id, k.id);
        assert!(matches!(
            Keys::read(&p, "wrong"),
            Err(StoreError::WrongPassphrase)
        ));
    }
}
