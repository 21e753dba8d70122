//! The kernel matrix: matrix.yaml, its lock file, fetching Debian kernel packages with a private apt state, and the kernel cache.
