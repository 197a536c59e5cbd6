//! The allocator set-up, in a test binary of its own: the threshold it fixes holds for the whole process.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Bytes glibc holds in blocks mapped on their own pages.
#[allow(unsafe_code)] // the C library's counters have no safe wrapper
fn bytes_in_own_mappings() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.hblkhd
}

#[test]
fn a_large_block_gets_its_own_pages_even_after_a_larger_one_was_freed() {
    service_kit::allocator::return_large_blocks_when_freed();
    // Left to itself, glibc raises its threshold to this block's size when it is freed.
    drop(std::hint::black_box(vec![1u8; 4 << 20]));
    let before = bytes_in_own_mappings();
    let block = std::hint::black_box(vec![1u8; 1 << 20]);
    assert!(
        bytes_in_own_mappings() >= before + (1 << 20),
        "a 1 MiB block came from the heap, where it stays resident once freed"
    );
    drop(block);
}
