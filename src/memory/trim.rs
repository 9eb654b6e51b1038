//! Giving freed memory back to the kernel. When caches shrink under pressure, the allocator
//! keeps the freed pages (glibc holds them in per-thread arenas); RSS, which is what the budget
//! and the OOM killer count, would not fall. `malloc_trim(0)` returns free pages of every arena
//! (since glibc 2.8 also from the middle of the heap, with `MADV_DONTNEED`).
//!
//! The only `unsafe` in the crate outside of dependencies: two calls into libc with no pointers
//! and no preconditions (`malloc_trim`, and `mallopt` for the arena cap at start). Measured in docs/memory.md (without it, RSS stayed at its peak after a
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

/// Caps glibc's malloc arenas at `n` (its default is 8 per core: every thread that allocates
/// soon gets an arena of its own, and the daemon has runtime workers, a writer, the governor,
/// the limiter's sync thread and the blocking pool). Measured with `bench/run.sh` on 2 cores,
/// 2 arenas instead of the default: peak RSS 37–39 MiB instead of 43–46, and ~10 % less CPU per
/// event (fewer, warmer arenas). Call first thing in `main`, before any thread exists. An
/// operator's `MALLOC_ARENA_MAX` wins: then this does nothing. Returns whether it set the cap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas(n: usize) -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    let n = i32::try_from(n.max(1)).unwrap_or(i32::MAX);
    // SAFETY: mallopt takes two plain integers and only sets the allocator's own tunable; glibc
    // documents M_ARENA_MAX as settable at any time (it takes effect for arenas created after).
    #[allow(unsafe_code)] // the FFI call itself; see the module documentation
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, n) };
    ok == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_n: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn arenas_can_be_capped() {
        // In the test binary (threads already exist) the cap only affects new arenas; glibc
        // accepts it either way, unless MALLOC_ARENA_MAX is set, which the cap leaves alone.
        let set = super::limit_arenas(2);
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            assert_eq!(set, cfg!(all(target_os = "linux", target_env = "gnu")));
        } else {
            assert!(!set);
        }
    }

    #[test]
    fn trimming_is_callable_any_time() {
        let v: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
        drop(v);
        let _ = super::release_free_memory();
    }
}
