//! Identifiers shaped like Graph's: long base64 ids for Outlook items, GUIDs for directory
//! objects, `b!…` for drives, base32 for drive items. Every id encodes the numeric key of its
//! object plus a keyed checksum, so ids can be decoded without an index and forged ids fail.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

use crate::rng::{Rng, mix};

/// Kinds of Outlook objects an id can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OutlookKind {
    /// A message.
    Message = 1,
    /// A mail folder.
    Folder = 2,
    /// An attachment (of a message or event).
    Attachment = 3,
    /// An event (single instance or series master).
    Event = 4,
    /// A calendar.
    Calendar = 5,
    /// A contact.
    Contact = 6,
    /// A contact folder.
    ContactFolder = 7,
    /// One occurrence of a recurring event.
    Occurrence = 8,
}

impl OutlookKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Message,
            2 => Self::Folder,
            3 => Self::Attachment,
            4 => Self::Event,
            5 => Self::Calendar,
            6 => Self::Contact,
            7 => Self::ContactFolder,
            8 => Self::Occurrence,
            _ => return None,
        })
    }
}

/// The decoded content of an Outlook id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutlookKey {
    /// What the id names.
    pub kind: OutlookKind,
    /// Mailbox number.
    pub mailbox: u32,
    /// Serial of the object in its mailbox.
    pub serial: u32,
    /// For messages: the move generation, or [`IMMUTABLE`]; for attachments and occurrences: the
    /// sub-index.
    pub sub: u32,
}

/// The `sub` value that marks an immutable message id.
pub const IMMUTABLE: u32 = u32::MAX;

/// Encodes and decodes ids with a tenant-specific key.
#[derive(Clone, Debug)]
pub struct IdCodec {
    key: u64,
}

impl IdCodec {
    /// A codec whose checksums depend on `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            key: mix(seed, 0x1D5),
        }
    }

    fn check(&self, bytes: &[u8], len: usize) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.key.to_le_bytes());
        hasher.update(bytes);
        let mut out = vec![0u8; len];
        hasher.finalize_xof().fill(&mut out);
        out
    }

    /// An Outlook id (`AAMkA…` for items, `AQMkA…` for containers).
    #[must_use]
    pub fn outlook(&self, key: OutlookKey) -> String {
        let container = matches!(
            key.kind,
            OutlookKind::Folder | OutlookKind::Calendar | OutlookKind::ContactFolder
        );
        let mut bytes = if container {
            vec![0x01, 0x03, 0x24, 0x00]
        } else {
            vec![0x00, 0x03, 0x24, 0x00]
        };
        bytes.push(key.kind as u8);
        bytes.extend_from_slice(&key.mailbox.to_be_bytes());
        bytes.extend_from_slice(&key.serial.to_be_bytes());
        bytes.extend_from_slice(&key.sub.to_be_bytes());
        let check = self.check(&bytes, 44);
        bytes.extend_from_slice(&check);
        URL_SAFE.encode(bytes)
    }

    /// Decodes an Outlook id; `None` when it is malformed or forged.
    #[must_use]
    pub fn decode_outlook(&self, id: &str) -> Option<OutlookKey> {
        let bytes = URL_SAFE.decode(id.trim()).ok()?;
        if bytes.len() != 61 {
            return None;
        }
        let (body, check) = bytes.split_at(17);
        if self.check(body, 44) != check {
            return None;
        }
        let kind = OutlookKind::from_u8(body[4])?;
        let word = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        Some(OutlookKey {
            kind,
            mailbox: word(5),
            serial: word(9),
            sub: word(13),
        })
    }

    /// A drive id (`b!…`).
    #[must_use]
    pub fn drive(&self, drive: u32) -> String {
        let mut bytes = drive.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.check(&bytes, 44));
        format!("b!{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Decodes a drive id.
    #[must_use]
    pub fn decode_drive(&self, id: &str) -> Option<u32> {
        let bytes = URL_SAFE_NO_PAD.decode(id.strip_prefix("b!")?).ok()?;
        if bytes.len() != 48 || self.check(&bytes[..4], 44) != bytes[4..] {
            return None;
        }
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A drive item id (`01` + 32 base32 characters, as OneDrive for Business prints them).
    #[must_use]
    pub fn drive_item(&self, drive: u32, serial: u32) -> String {
        let mut bytes = drive.to_be_bytes().to_vec();
        bytes.extend_from_slice(&serial.to_be_bytes());
        bytes.extend_from_slice(&self.check(&bytes, 12));
        format!("01{}", base32(&bytes))
    }

    /// Decodes a drive item id into (drive, serial).
    #[must_use]
    pub fn decode_drive_item(&self, id: &str) -> Option<(u32, u32)> {
        let bytes = unbase32(id.strip_prefix("01")?)?;
        if bytes.len() != 20 || self.check(&bytes[..8], 12) != bytes[8..] {
            return None;
        }
        let drive = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let serial = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Some((drive, serial))
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B32.iter().position(|&x| x == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xFF).ok()?);
        }
    }
    Some(out)
}

/// A GUID derived from `(seed, kind, n)`, formatted like a version-4 UUID.
#[must_use]
pub fn guid(seed: u64, kind: u64, n: u64) -> uuid::Uuid {
    let mut rng = Rng::new(mix(mix(seed, kind), n));
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_ids_round_trip_and_reject_forgeries() {
        let codec = IdCodec::new(42);
        let key = OutlookKey {
            kind: OutlookKind::Message,
            mailbox: 3,
            serial: 77,
            sub: 2,
        };
        let id = codec.outlook(key);
        assert!(id.starts_with("AAMkA"), "{id}");
        assert_eq!(codec.decode_outlook(&id), Some(key));
        assert_eq!(IdCodec::new(43).decode_outlook(&id), None);
        let folder = codec.outlook(OutlookKey {
            kind: OutlookKind::Folder,
            ..key
        });
        assert!(folder.starts_with("AQMkA"));
    }

    #[test]
    fn drive_ids_round_trip() {
        let codec = IdCodec::new(1);
        let d = codec.drive(9);
        assert!(d.starts_with("b!"));
        assert_eq!(codec.decode_drive(&d), Some(9));
        let item = codec.drive_item(9, 123_456);
        assert_eq!(item.len(), 34);
        assert_eq!(codec.decode_drive_item(&item), Some((9, 123_456)));
        assert_eq!(codec.decode_drive_item("01AAAA"), None);
    }
}
