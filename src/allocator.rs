//! Settings and upkeep of the C allocator (glibc malloc), which the process uses for Rust's
//! allocations and SQLite's alike.

/// Makes glibc malloc hand freed memory back instead of keeping it for later.
///
/// The sweep frees a page's body (up to about 1 MB) every fraction of a second. glibc gives each
/// thread that allocates its own arena, and after the first large block is freed it raises
/// its mmap threshold, so later bodies land in the arenas and stay there. Two arenas and a
/// fixed threshold keep the process's resident memory close to what it really uses.
///
/// Call it first thing in `main`, before any other thread exists.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ARENAS: libc::c_int = 2;
        const MMAP_THRESHOLD_BYTES: libc::c_int = 128 * 1024;

        // SAFETY: mallopt only changes allocator settings, and `main` calls this before any
        // other thread exists. A setting it rejects leaves the default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}

/// Returns the free pages inside the allocator's heaps to the kernel.
///
/// glibc only shrinks a heap from its top. After a sweep has freed its pages, allocations
/// still in use (the webhook queue, pooled connections) keep that top in place, so the free
/// space below it stays resident. In one soak this call released 2 MiB after a sweep. It
/// takes the arenas' locks while it walks them, so call it once per sweep, not per page.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free pages and keeps every allocation in place.
        // glibc makes it safe to call from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Bytes of the C allocator's heap: in use by live allocations, and free but kept by it.
pub struct HeapUsage {
    pub in_use: u64,
    pub free: u64,
}

/// Reads glibc's own accounting of its heap, over every arena.
///
/// The free part is memory that glibc keeps after it was freed. A free part that grows while
/// the used part stays level means the heap is fragmenting, not leaking.
pub fn heap_usage() -> Option<HeapUsage> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters, under the arenas' locks.
        let info = unsafe { libc::mallinfo2() };
        Some(HeapUsage { in_use: (info.uordblks + info.hblkhd) as u64, free: info.fordblks as u64 })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}
