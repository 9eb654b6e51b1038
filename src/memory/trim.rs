//! Giving freed memory back to the kernel. When caches shrink under pressure, the allocator
//! keeps the freed pages (glibc holds them in per-thread arenas); RSS, which is what the budget
//! and the OOM killer count, would not fall. `malloc_trim(0)` returns free pages of every arena
//! (since glibc 2.8 also from the middle of the heap, with `MADV_DONTNEED`).
//!
//! The one `unsafe` in the crate outside of dependencies: a call into libc with no pointers
//! and no preconditions. Measured in docs/memory.md (without it, RSS stayed at its peak after a
//! flood; with it, it fell back under the budget).

/// Releases free allocator memory to the kernel; returns whether anything was released. A
/// no-op on non-glibc targets.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state under
    // its own locks, and is documented as safe to call at any time from any thread.
    #[allow(unsafe_code)] // the FFI call itself; see the module documentation
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_is_callable_any_time() {
        let v: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
        drop(v);
        let _ = super::release_free_memory();
    }
}
