//! End-to-end tests of tapmatrix: shared helpers for tests that boot real kernels in QEMU.
