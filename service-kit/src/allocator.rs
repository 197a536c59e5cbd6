//! How the process hands freed memory back to the system: large blocks get pages of their own, returned when freed.
//!
//! glibc's malloc gives a block of 128 KiB or more its own mapping and unmaps it when it is freed, but only until
//! the first such block is freed: from then on it raises that threshold to the freed block's size (up to 32 MiB on
//! 64-bit), so later large blocks come from its heaps, where what is freed stays resident for the next allocation.
//! A service whose large buffers come and go (the publisher's Arrow columns and librdkafka's decompressed fetches)
//! then keeps its peak and the heaps' fragments on top of it. Fixing the threshold at glibc's own starting value
//! keeps every large block returnable; the price is a fresh mapping (and its page faults) per large block.
//!
//! The publisher calls it. Ingest does not: its large blocks (bodies, a body's records) are bounded by admission and
//! reused, and the fixed threshold measured no different there (docs/benchmarks.md, "Results — 2026-12-07").

/// The threshold glibc starts from: blocks this large or larger are mapped on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_BLOCK: libc::c_int = 128 * 1024;

/// Stops glibc from moving large blocks into its heaps (see the module's documentation). Call it first in `main`,
/// before any thread starts. Leaves the threshold alone when `MALLOC_MMAP_THRESHOLD_` is set, since glibc has
/// applied the operator's choice already; does nothing where the C library is not glibc.
#[allow(unsafe_code)] // one FFI call into the C library, which has no safe wrapper
pub fn return_large_blocks_when_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes a tuning parameter of the allocator and takes glibc's own lock to do it.
        let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK) };
        debug_assert_eq!(applied, 1, "glibc accepts any threshold up to 32 MiB");
    }
}
