//! The target a script is preprocessed for: what `%( kernel_v >= "5.10" %? ...
//! %)` and friends compare against.

use std::cmp::Ordering;
use std::collections::HashMap;

/// The kernel release used when none is given: Debian 12's kernel, the one
/// the bundled tapset tests are written against.
pub const DEFAULT_KERNEL_RELEASE: &str = "6.1.0";
/// The architecture used when none is given.
pub const DEFAULT_ARCH: &str = "x86_64";
/// The SystemTap language version `systemtap_v` compares against by default
/// (the version of the tapsets this front end is tested with).
pub const DEFAULT_SYSTEMTAP_VERSION: &str = "4.8";

/// Which runtime the script is for (`runtime` in conditionals; also picks the
/// `linux/`, `dyninst/` or `bpf/` tapset subdirectory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// The kernel-module runtime, SystemTap's default: `"kernel"`, `linux/`.
    #[default]
    Kernel,
    /// The user-space Dyninst runtime: `"dyninst"`, `dyninst/`.
    Dyninst,
    /// The BPF runtime: `"bpf"`, `bpf/`.
    Bpf,
}

impl Runtime {
    /// The name `runtime` compares against.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Kernel => "kernel",
            Runtime::Dyninst => "dyninst",
            Runtime::Bpf => "bpf",
        }
    }

    /// The tapset subdirectory holding this runtime's tapsets.
    pub fn tapset_dir(self) -> &'static str {
        match self {
            Runtime::Kernel => "linux",
            Runtime::Dyninst => "dyninst",
            Runtime::Bpf => "bpf",
        }
    }
}

/// The privilege level the script runs with (`systemtap_privilege`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privilege {
    /// Full privilege, SystemTap's default for root.
    #[default]
    Stapdev,
    /// `stapsys`.
    Stapsys,
    /// `stapusr`.
    Stapusr,
}

impl Privilege {
    /// The name `systemtap_privilege` compares against.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Stapdev => "stapdev",
            Privilege::Stapsys => "stapsys",
            Privilege::Stapusr => "stapusr",
        }
    }
}

/// Everything preprocessor conditionals can ask about.
#[derive(Debug, Clone)]
pub struct Profile {
    /// `arch`, e.g. `x86_64`, `arm64` (SystemTap's normalized machine names).
    pub arch: String,
    /// `kernel_vr`, e.g. `6.1.0-13-amd64`; `kernel_v` is the part before the first `-`.
    pub kernel_release: String,
    /// `CONFIG_*` values from a kernel config (`y`, `m`, numbers, strings).
    pub kernel_config: HashMap<String, String>,
    /// `systemtap_v`.
    pub systemtap_version: String,
    /// `runtime`.
    pub runtime: Runtime,
    /// `systemtap_privilege`.
    pub privilege: Privilege,
    /// `guru_mode` (`stap -g`): also allows embedded C in user scripts.
    pub guru_mode: bool,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            arch: DEFAULT_ARCH.to_string(),
            kernel_release: DEFAULT_KERNEL_RELEASE.to_string(),
            kernel_config: HashMap::new(),
            systemtap_version: DEFAULT_SYSTEMTAP_VERSION.to_string(),
            runtime: Runtime::Kernel,
            privilege: Privilege::Stapdev,
            guru_mode: false,
        }
    }
}

impl Profile {
    /// `kernel_v`: the release up to its first `-`.
    pub fn kernel_version(&self) -> &str {
        self.kernel_release
            .split_once('-')
            .map_or(self.kernel_release.as_str(), |(v, _)| v)
    }

    /// A `CONFIG_*` value, empty when unset (as in SystemTap).
    pub fn config(&self, name: &str) -> &str {
        self.kernel_config.get(name).map_or("", String::as_str)
    }
}

/// Parses a kernel `.config`: `CONFIG_X=y` lines (quotes around string
/// values removed); comments and `# CONFIG_X is not set` lines are skipped.
pub fn parse_kernel_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (key, value) = line.split_once('=')?;
            if !key.starts_with("CONFIG_") {
                return None;
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Shell-style wildcard match (`*`, `?`, `[...]`, `[!...]`), as `fnmatch`
/// with `FNM_NOESCAPE`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        let (mut pi, mut ti) = (0, 0);
        let (mut star, mut star_t) = (None, 0);
        while ti < t.len() {
            if pi < p.len() {
                match p[pi] {
                    b'*' => {
                        star = Some(pi);
                        star_t = ti;
                        pi += 1;
                        continue;
                    }
                    b'?' => {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                    b'[' => {
                        if let Some((matched, next)) = class(p, pi, t[ti]) {
                            if matched {
                                pi = next;
                                ti += 1;
                                continue;
                            }
                        } else if t[ti] == b'[' {
                            pi += 1;
                            ti += 1;
                            continue;
                        }
                    }
                    c if c == t[ti] => {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            match star {
                Some(s) => {
                    pi = s + 1;
                    star_t += 1;
                    ti = star_t;
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
    /// Matches `c` against the class at `p[start] == '['`: (matched, index after `]`).
    fn class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
        let mut i = start + 1;
        let negate = matches!(p.get(i), Some(b'!' | b'^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let lo = *p.get(i)?;
            if lo == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&hi| hi != b']') {
                let hi = p[i + 2];
                matched |= lo <= c && c <= hi;
                i += 3;
            } else {
                matched |= lo == c;
                i += 1;
            }
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Version-aware string comparison (glibc's `strverscmp` for the version
/// strings scripts use: runs of digits compare as numbers).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (x, y) = (&a[si..i], &b[sj..j]);
            let fractional = x.first() == Some(&b'0') || y.first() == Some(&b'0');
            let ord = if fractional {
                // strverscmp: a leading zero makes the run a fraction.
                x.cmp(y)
            } else {
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            };
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// A pattern for [`fnmatch`] prepared once, for matching many texts
/// (function names): one whose only wildcard is `*` is matched by its
/// literal pieces, without backtracking.
#[derive(Debug, Clone)]
pub struct Glob<'a> {
    pattern: &'a str,
    /// For a pattern with `*` and no other wildcard: the piece before the
    /// first `*`, the pieces between, the piece after the last.
    stars: Option<(&'a str, Vec<&'a str>, &'a str)>,
}

impl<'a> Glob<'a> {
    /// Prepares `pattern`.
    pub fn new(pattern: &'a str) -> Glob<'a> {
        let stars = if pattern.contains(['?', '[']) {
            None
        } else {
            pattern.split_once('*').map(|(first, after)| {
                let (middle, last) = after.rsplit_once('*').unwrap_or(("", after));
                let middle = if middle.is_empty() {
                    Vec::new()
                } else {
                    middle.split('*').collect()
                };
                (first, middle, last)
            })
        };
        Glob { pattern, stars }
    }

    /// Whether `text` matches, as [`fnmatch`] says.
    pub fn matches(&self, text: &str) -> bool {
        let Some((first, middle, last)) = &self.stars else {
            return fnmatch(self.pattern, text);
        };
        let Some(mut rest) = text
            .strip_prefix(first)
            .and_then(|rest| rest.strip_suffix(last))
        else {
            return false;
        };
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_patterns_match_as_the_general_matcher() {
        // A plain recursive matcher of `*` and literals as the reference.
        fn reference(p: &[u8], t: &[u8]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
                Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
            }
        }
        fn all(alphabet: &[u8], max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut last = vec![String::new()];
            for _ in 0..max {
                last = last
                    .iter()
                    .flat_map(|s| alphabet.iter().map(move |&c| format!("{s}{}", c as char)))
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        for pattern in all(b"ab*", 5) {
            for text in all(b"ab", 5) {
                let expected = reference(pattern.as_bytes(), text.as_bytes());
                assert_eq!(fnmatch(&pattern, &text), expected, "{pattern:?} {text:?}");
                assert_eq!(
                    Glob::new(&pattern).matches(&text),
                    expected,
                    "{pattern:?} {text:?}"
                );
            }
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_cmp("6.1.0", "2.6.30"), Ordering::Greater);
        assert_eq!(version_cmp("2.6.9", "2.6.30"), Ordering::Less);
        assert_eq!(version_cmp("4.8", "4.8"), Ordering::Equal);
        assert_eq!(version_cmp("4.8", "4.10"), Ordering::Less);
        assert_eq!(version_cmp("5.10", "5.9"), Ordering::Greater);
        assert_eq!(version_cmp("6.1", "6.1.0"), Ordering::Less);
    }

    #[test]
    fn wildcards() {
        assert!(fnmatch("i?86", "i686"));
        assert!(Glob::new("i?86").matches("i686") && Glob::new("[xa]*").matches("arm64"));
        assert!(!fnmatch("i?86", "x86_64"));
        assert!(fnmatch("*64", "x86_64"));
        assert!(fnmatch("[xa]*", "arm64"));
        assert!(!fnmatch("[!xa]*", "arm64"));
        assert!(fnmatch("2.6.*", "2.6.32"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("y", ""));
    }

    #[test]
    fn kernel_config_lines() {
        let config = parse_kernel_config(
            "# c\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=12\n",
        );
        assert_eq!(config.get("CONFIG_A").map(String::as_str), Some("y"));
        assert_eq!(config.get("CONFIG_B"), None);
        assert_eq!(config.get("CONFIG_C").map(String::as_str), Some("x y"));
        assert_eq!(config.get("CONFIG_D").map(String::as_str), Some("12"));
    }

    #[test]
    fn kernel_version_strips_the_abi() {
        let profile = Profile {
            kernel_release: "6.1.0-13-amd64".to_string(),
            ..Profile::default()
        };
        assert_eq!(profile.kernel_version(), "6.1.0");
    }
}
