//! Backhome's repository: content-addressed, deduplicated, compressed storage of backup data
//! with a SQLite catalog. See `ARCHITECTURE.md` at the top of the workspace.

/// Identifier of a stored blob: the BLAKE3 hash of its plain content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// Hashes `data` into its blob id.
    #[must_use]
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hexadecimal form of the id.
    #[must_use]
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::BlobId;

    #[test]
    fn blob_id_is_blake3_of_content() {
        assert_eq!(
            BlobId::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_ne!(BlobId::of(b"a"), BlobId::of(b"b"));
    }
}
