//! Booting kernels in QEMU: initramfs builder, QEMU launcher, accelerator probe, prerequisites, and the raw facts harvest.
