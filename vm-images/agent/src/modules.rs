//! Kernel modules an item needs, loaded before its artefact is installed:
//! each from the image ([`tapmatrix_wire::module_path`]) with
//! `finit_module`, in the order the host gave (dependencies first), and
//! the item's setup command run to its end.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Loads each module of `names` not loaded yet (`/sys/module/NAME` exists
/// once a module is loaded, or built in with parameters); returns how many
/// it loaded.
pub fn load(names: &[String]) -> Result<usize> {
    let mut loaded = 0;
    for name in names {
        if Path::new("/sys/module").join(name).exists() {
            continue;
        }
        let path = tapmatrix_wire::module_path(name);
        let started = Instant::now();
        let file = std::fs::File::open(&path)
            .with_context(|| format!("opening module {name} at {path} (not in the image)"))?;
        match rustix::system::finit_module(&file, c"", 0) {
            Ok(()) => loaded += 1,
            // Loaded meanwhile (a dependency another module pulled in).
            Err(rustix::io::Errno::EXIST) => {}
            Err(errno) => bail!(
                "loading module {name} ({path}) with finit_module: {errno} (the kernel log on the console says why)"
            ),
        }
        crate::log(&format!(
            "module {name} loaded in {} ms",
            started.elapsed().as_millis()
        ));
    }
    Ok(loaded)
}

/// Runs `command` with `/bin/sh -c` to its end; its output is returned
/// with the error when it fails.
pub fn setup(command: &str) -> Result<()> {
    if command.is_empty() {
        return Ok(());
    }
    let output = Command::new("/bin/sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting the setup `{command}`"))?;
    if !output.status.success() {
        bail!(
            "the setup `{command}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
