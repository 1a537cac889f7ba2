//! The simulated tenant: compact metadata only (ids, names, sizes, seeds). Content is produced on
//! demand by [`crate::content`]. Mailboxes and drives are materialised lazily on first access.

mod generate;
mod log;
mod model;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub use generate::{BASE_TIME, ascii_fold};
pub use log::{ChangeLog, Expired, Removed};
pub use model::*;

use crate::ids::IdCodec;

/// Sizes of a generated tenant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    /// Number of users (a few of them are shared mailboxes or have no mailbox).
    pub users: usize,
    /// Messages per mailbox.
    pub messages_per_user: usize,
    /// Files per OneDrive.
    pub files_per_user: usize,
    /// Events per mailbox.
    pub events_per_user: usize,
    /// Contacts per mailbox.
    pub contacts_per_user: usize,
    /// Microsoft 365 groups (each with a site and, for most, a team).
    pub groups: usize,
    /// Extra communication sites not tied to a group.
    pub sites: usize,
    /// Top-level messages per channel.
    pub channel_messages: usize,
    /// Largest generated file, in bytes.
    pub max_file_size: u64,
}

/// The whole tenant.
pub struct Tenant {
    /// Seed everything derives from.
    pub seed: u64,
    /// Tenant GUID.
    pub id: uuid::Uuid,
    /// Verified domain (`contoso-<seed>.onmicrosoft.com`).
    pub domain: String,
    /// Id codec keyed by the seed.
    pub codec: IdCodec,
    /// Generated sizes.
    pub sizes: Sizes,
    seq: AtomicU64,
    /// Directory objects and the cells of mailboxes, drives and teams.
    pub dir: RwLock<Directory>,
}

impl Tenant {
    /// Generates the tenant for `seed` and `sizes` (directory eagerly, content lazily).
    #[must_use]
    pub fn generate(seed: u64, sizes: Sizes) -> Self {
        let codec = IdCodec::new(seed);
        let id = crate::ids::guid(seed, 0x7E4A, 0);
        let domain = format!("contoso{}.onmicrosoft.com", seed % 100_000);
        let dir = generate::directory(seed, &sizes, &codec, &domain);
        Self {
            seed,
            id,
            domain,
            codec,
            sizes,
            seq: AtomicU64::new(1),
            dir: RwLock::new(dir),
        }
    }

    /// The next change sequence number (strictly increasing across the tenant).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current sequence number (everything changed so far has a number ≤ this).
    pub fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// The mailbox of user `idx`, materialised on first use; `None` when the user has none.
    pub fn mailbox(&self, idx: u32) -> Option<Arc<MailboxCell>> {
        let dir = self.dir.read();
        let user = dir.users.get(idx as usize)?;
        if user.kind == UserKind::NoMailbox {
            return None;
        }
        Some(user.mailbox.clone())
    }

    /// Runs `f` with read access to the mailbox.
    pub fn with_mailbox<R>(&self, cell: &MailboxCell, f: impl FnOnce(&Mailbox) -> R) -> R {
        let lock = cell.get_or_init(|| RwLock::new(generate::mailbox(self, cell)));
        f(&lock.read())
    }

    /// Runs `f` with write access to the mailbox.
    pub fn with_mailbox_mut<R>(&self, cell: &MailboxCell, f: impl FnOnce(&mut Mailbox) -> R) -> R {
        let lock = cell.get_or_init(|| RwLock::new(generate::mailbox(self, cell)));
        f(&mut lock.write())
    }

    /// The drive cell with number `idx`.
    pub fn drive(&self, idx: u32) -> Option<Arc<DriveCell>> {
        let dir = self.dir.read();
        dir.drives
            .get(idx as usize)
            .filter(|d| !d.deleted)
            .map(|d| d.cell.clone())
    }

    /// Runs `f` with read access to the drive.
    pub fn with_drive<R>(&self, cell: &DriveCell, f: impl FnOnce(&Drive) -> R) -> R {
        let lock = cell.get_or_init(|| RwLock::new(generate::drive(self, cell)));
        f(&lock.read())
    }

    /// Runs `f` with write access to the drive.
    pub fn with_drive_mut<R>(&self, cell: &DriveCell, f: impl FnOnce(&mut Drive) -> R) -> R {
        let lock = cell.get_or_init(|| RwLock::new(generate::drive(self, cell)));
        f(&mut lock.write())
    }

    /// Finds a user by id or user principal name (case-insensitive), skipping deleted users.
    pub fn find_user(&self, key: &str) -> Option<u32> {
        let dir = self.dir.read();
        let key = key.to_lowercase();
        dir.users
            .iter()
            .find(|u| !u.deleted && (u.id.to_string() == key || u.upn.to_lowercase() == key))
            .map(|u| u.idx)
    }

    /// Finds a group by id.
    pub fn find_group(&self, key: &str) -> Option<u32> {
        let dir = self.dir.read();
        let key = key.to_lowercase();
        dir.groups
            .iter()
            .find(|g| !g.deleted && g.id.to_string() == key)
            .map(|g| g.idx)
    }

    /// Adds a user with a fresh mailbox and OneDrive; returns its index.
    pub fn add_user(&self, display_name: &str, upn_local: &str, kind: UserKind) -> u32 {
        let seq = self.next_seq();
        let mut dir = self.dir.write();
        generate::add_user(
            self.seed,
            &self.codec,
            &self.domain,
            &mut dir,
            display_name,
            upn_local,
            kind,
            0,
            0,
            seq,
        )
    }
}
