fn main() -> std::process::ExitCode {
    tune_allocator();
    greenhouse_sync::cli::main()
}

/// Makes glibc malloc hand freed memory back instead of keeping it for later.
///
/// The sweep frees a page's body (up to about 1 MB) every fraction of a second. glibc gives each
/// thread that allocates its own arena, and after the first large block is freed it raises
/// its mmap threshold, so later bodies land in the arenas and stay there. Two arenas and a
/// fixed threshold keep the process's resident memory close to what it really uses.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ARENAS: libc::c_int = 2;
        const MMAP_THRESHOLD_BYTES: libc::c_int = 128 * 1024;

        // SAFETY: mallopt only changes allocator settings; it is called before any other
        // thread exists, and a setting it refuses leaves the default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}
