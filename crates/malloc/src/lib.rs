//! Allocator tuning for the `backhome` process.
//!
//! glibc serves allocations from 128 KiB up with `mmap` and gives them back on `free`, but each
//! time such a block is freed it raises that threshold to the block's size (up to 32 MiB). A
//! backup frees hundreds of large buffers a second (HTTP read buffers that grow to 400 KiB,
//! downloads of up to 1 MiB), so after the first few the threshold has climbed and every later
//! buffer comes from the heap arenas, which fragment and are not returned: the resident size
//! ends up about twice what is in use. Fixing the threshold at its default stops the climb.
//! Measured with the backup benchmark (49 mailboxes × 200 messages): peak RSS 199–212 MB
//! before, 102 MB after.
//!
//! Other C libraries (musl, which the NAS packages are built with) return large blocks anyway;
//! there this does nothing.

/// The size from which glibc allocates with `mmap`: glibc's default, fixed.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// Applies the tuning to this process. Call once, early in `main`; calling again is harmless.
/// Answers whether the C library took it (always `false` where there is nothing to tune).
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(threshold) = libc::c_int::try_from(MMAP_THRESHOLD) else {
            return false;
        };
        // SAFETY: `mallopt` only changes allocator parameters; glibc takes its own lock and
        // allows it at any time. It answers 1 when the value was accepted.
        #[allow(unsafe_code)]
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
        accepted == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_threshold() {
        let took = super::tune();
        assert_eq!(
            took,
            cfg!(all(target_os = "linux", target_env = "gnu")),
            "mallopt answered differently than expected for this C library"
        );
    }
}
