//! Typed kernel facts (KernelFacts): functions, symbols, tracepoints, syscalls, tracing features and BTF, parsed from what a booted kernel exposes.
