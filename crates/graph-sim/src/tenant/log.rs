//! Change logs: what a delta query needs to report deletions, with a bounded retention.

/// One removal from a container (an item deleted or moved out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// Sequence number of the removal.
    pub seq: u64,
    /// Serial of the removed item in its container's owner.
    pub serial: u32,
    /// Extra key (message move generation, channel message id …).
    pub sub: u32,
    /// Graph id of the removed item as clients knew it.
    pub id: String,
    /// Name of the removed item (drive items) or empty.
    pub name: String,
}

/// A delta token older than the retained log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired;

/// The removals of one container, keeping at most `limit` entries.
#[derive(Clone, Debug, Default)]
pub struct ChangeLog {
    removed: Vec<Removed>,
    floor: u64,
}

/// Removals retained per container before old delta tokens expire.
pub const RETAINED: usize = 20_000;

impl ChangeLog {
    /// Records a removal.
    pub fn push(&mut self, removed: Removed) {
        self.removed.push(removed);
        if self.removed.len() > RETAINED {
            let drop = self.removed.len() - RETAINED;
            self.floor = self.removed[drop - 1].seq;
            self.removed.drain(..drop);
        }
    }

    /// Removals after `since`; `Err(Expired)` when entries after `since` were dropped. An
    /// initial enumeration (`since` 0) has no token to expire and reports no removals.
    pub fn since(&self, since: u64) -> Result<impl Iterator<Item = &Removed>, Expired> {
        if since > 0 && since < self.floor {
            return Err(Expired);
        }
        Ok(self
            .removed
            .iter()
            .filter(move |r| since > 0 && r.seq > since))
    }

    /// Makes every token issued before `seq` expire.
    pub fn expire_before(&mut self, seq: u64) {
        self.floor = self.floor.max(seq);
        self.removed.retain(|r| r.seq > seq);
    }
}
