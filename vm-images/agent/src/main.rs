//! The in-guest agent (PID 1 of the initramfs).

fn main() {}
