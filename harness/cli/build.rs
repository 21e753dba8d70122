//! Builds the default kernel matrix, its lock and the tapset library into
//! the binary (`builtin.rs` in `OUT_DIR`, read by `src/builtin.rs`), so that
//! an installed `tapmatrix` works from any directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    // The content hash naming the written-out root (`src/builtin.rs`),
    // computed here once instead of in every run: SHA-256 over each file's
    // path, a NUL, its length (u64 LE) and its bytes, in the order
    // `builtin::files` lists them (the matrix, its lock, then the tapsets).
    let mut hasher = Sha256::new();
    let mut entries: Vec<(String, PathBuf)> = [("matrix.yaml"), ("matrix.lock")]
        .iter()
        .map(|file| (format!("kernels/{file}"), kernels.join(file)))
        .collect();
    entries.extend(
        files
            .iter()
            .map(|(relative, path)| (format!("tapsets/{relative}"), PathBuf::from(path))),
    );
    for (path, file) in &entries {
        let Ok(bytes) = std::fs::read(file) else {
            println!("cargo:warning=cannot read {}", file.display());
            std::process::exit(1);
        };
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let hash: String = hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let _ = writeln!(
        code,
        "/// The content hash of the built-in files (names their written-out root).\npub const HASH: &str = {hash:?};"
    );
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
