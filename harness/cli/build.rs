//! Builds the default kernel matrix, its lock and the tapset library into
//! the binary (`builtin.rs` in `OUT_DIR`, read by `src/builtin.rs`), so that
//! an installed `tapmatrix` works from any directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let tapsets = root.join("tapsets");
    let kernels = root.join("kernels");
    println!("cargo:rerun-if-changed={}", tapsets.display());
    println!(
        "cargo:rerun-if-changed={}",
        kernels.join("matrix.yaml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        kernels.join("matrix.lock").display()
    );
    let mut files = Vec::new();
    collect(&tapsets, &tapsets, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The tapset library: each file's path under `tapsets/` and its content.\n\
         pub const TAPSETS: &[(&str, &[u8])] = &[\n",
    );
    for (relative, path) in &files {
        let _ = writeln!(code, "    ({relative:?}, include_bytes!({path:?})),");
    }
    code.push_str("];\n");
    for (name, file) in [
        ("MATRIX_YAML", "matrix.yaml"),
        ("MATRIX_LOCK", "matrix.lock"),
    ] {
        let path = kernels.join(file).display().to_string();
        let _ = writeln!(
            code,
            "/// `kernels/{file}`.\npub const {name}: &str = include_str!({path:?});"
        );
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("builtin.rs");
    if let Err(error) = std::fs::write(&out, code) {
        println!("cargo:warning=writing {}: {error}", out.display());
        std::process::exit(1);
    }
}

/// Every file under `dir` as (path relative to `base`, absolute path).
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!("cargo:warning=cannot read {}", dir.display());
        std::process::exit(1);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, files);
        } else if let Ok(relative) = path.strip_prefix(base) {
            let absolute = path.canonicalize().unwrap_or(path.clone());
            files.push((
                relative.display().to_string(),
                absolute.display().to_string(),
            ));
        }
    }
}
