//! What the kernel's dynamic events accept, read from the tracefs `README`
//! (its `readme_msg` lists the syntax the build supports, as ftracetest
//! relies on).

use serde::{Deserialize, Serialize};

/// Dynamic-event syntax and tracing files this kernel's `README` documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracingFeatures {
    /// `kprobe_events` exists (`p:`/`r:` events).
    pub kprobe_events: bool,
    /// `uprobe_events` exists.
    pub uprobe_events: bool,
    /// `dynamic_events` exists.
    pub dynamic_events: bool,
    /// `%return` suffix on a kprobe place (return probe by `p:`).
    pub return_suffix: bool,
    /// `$arg<N>` fetch args.
    pub arg_n: bool,
    /// BTF argument names (`<argname>[->field...]`) as fetch args.
    pub btf_args: bool,
    /// `$retval`.
    pub retval: bool,
    /// `$comm`.
    pub comm: bool,
    /// `$stack<index>`.
    pub stack: bool,
    /// `\imm-value` immediates.
    pub immediate: bool,
    /// `\"imm-string"` immediate strings.
    pub immediate_string: bool,
    /// `f:` fprobe events.
    pub fprobe: bool,
    /// `t:` tracepoint probe events.
    pub tprobe: bool,
    /// `e:` event probes.
    pub eprobe: bool,
    /// `s:` synthetic events through `dynamic_events`.
    pub synthetic: bool,
    /// `ustring` fetch type.
    pub ustring: bool,
    /// `symstr` fetch type.
    pub symstr: bool,
    /// `char` fetch type.
    pub char_type: bool,
    /// Bitfield fetch type `b<bit-width>@<bit-offset>/<container-size>`.
    pub bitfield: bool,
    /// Array fetch types `<type>[<array-size>]`.
    pub array_type: bool,
    /// `%pd`/`%pD` (dentry and file names).
    pub dentry_type: bool,
    /// `hist:` triggers.
    pub hist_triggers: bool,
}

/// Picks one flag of [`TracingFeatures`].
type Flag = fn(&mut TracingFeatures) -> &mut bool;

/// Each feature with the text in `readme_msg` that documents it.
const MARKERS: &[(&str, Flag)] = &[
    ("kprobe_events\t", |f| &mut f.kprobe_events),
    ("uprobe_events\t", |f| &mut f.uprobe_events),
    ("dynamic_events\t", |f| &mut f.dynamic_events),
    ("%return", |f| &mut f.return_suffix),
    ("$arg<N>", |f| &mut f.arg_n),
    ("<argname>", |f| &mut f.btf_args),
    ("$retval", |f| &mut f.retval),
    ("$comm", |f| &mut f.comm),
    ("$stack<index>", |f| &mut f.stack),
    ("\\imm-value", |f| &mut f.immediate),
    ("\\\"imm-string\"", |f| &mut f.immediate_string),
    ("ustring", |f| &mut f.ustring),
    ("symstr", |f| &mut f.symstr),
    (" char,", |f| &mut f.char_type),
    ("b<bit-width>@<bit-offset>/<container-size>", |f| {
        &mut f.bitfield
    }),
    ("<type>\\[<array-size>\\]", |f| &mut f.array_type),
    ("%pd/%pD", |f| &mut f.dentry_type),
    ("hist trigger", |f| &mut f.hist_triggers),
];

impl TracingFeatures {
    /// Reads the features from the tracefs `README` text.
    pub fn from_readme(readme: &str) -> TracingFeatures {
        let mut features = TracingFeatures::default();
        for (marker, flag) in MARKERS {
            *flag(&mut features) = readme.contains(marker);
        }
        // Event definition formats, one per line after `Format:`; the
        // brackets changed over versions (`e[:[<group>/]<event>]` on 5.15,
        // `e[:[<group>/][<event>]]` later), so only the leading letter counts.
        for line in readme.lines() {
            let line = line.trim_start();
            let line = line.strip_prefix("Format:").unwrap_or(line).trim_start();
            if line.starts_with("f[:") {
                features.fprobe = true;
            } else if line.starts_with("t[:") {
                features.tprobe = true;
            } else if line.starts_with("e[:") {
                features.eprobe = true;
            } else if line.starts_with("s:[synthetic/]") {
                features.synthetic = true;
            }
        }
        features
    }

    /// The probe syntaxes accepted, as short labels (`kprobe $argN`, `fprobe`, ...).
    pub fn probe_syntax(&self) -> Vec<&'static str> {
        [
            (self.kprobe_events, "kprobe"),
            (self.return_suffix, "%return"),
            (self.arg_n, "$argN"),
            (self.btf_args, "BTF args"),
            (self.fprobe, "fprobe (f:)"),
            (self.tprobe, "tprobe (t:)"),
            (self.eprobe, "eprobe (e:)"),
            (self.uprobe_events, "uprobe"),
            (self.synthetic, "synthetic"),
            (self.hist_triggers, "hist"),
            (self.ustring, "ustring"),
            (self.symstr, "symstr"),
            (self.bitfield, "bitfield"),
            (self.immediate, "\\imm"),
        ]
        .into_iter()
        .filter_map(|(on, label)| on.then_some(label))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fetch-arg lines as 6.1's `readme_msg` has them (see the fixture for all).
    const README_6_1: &str = "  kprobe_events\t\t- Create\n\t     args: <name>=fetcharg[:type]\n\t fetcharg: (%<register>|$<efield>), @<address>, @<symbol>[+|-<offset>],\n\t           $stack<index>, $stack, $retval, $comm, $arg<N>,\n\t           +|-[u]<offset>(<fetcharg>), \\imm-value, \\\"imm-string\"\n\t           e[:[<group>/][<event>]] <attached-group>.<attached-event> [<args>] [if <filter>]\n";

    #[test]
    fn markers() {
        let f = TracingFeatures::from_readme(README_6_1);
        assert!(f.kprobe_events && f.arg_n && f.retval && f.comm && f.eprobe);
        assert!(f.immediate && f.immediate_string);
        assert!(!f.fprobe && !f.btf_args && !f.uprobe_events);
        // 5.15's eprobe line had other brackets.
        let old = "\t           e[:[<group>/]<event>] <attached-group>.<attached-event> [<args>]\n";
        assert!(TracingFeatures::from_readme(old).eprobe);
        // A mention inside prose is not a format line.
        assert!(!TracingFeatures::from_readme("see f[:[<group>/][<event>]] below").fprobe);
        let later = format!(
            "{README_6_1}\t           <argname>[->field[->field|.field...]],\n\t           f[:[<group>/][<event>]] <func-name>[%return] [<args>]\n"
        );
        let f = TracingFeatures::from_readme(&later);
        assert!(f.btf_args && f.fprobe && f.return_suffix);
        assert_eq!(
            f.probe_syntax()[..4],
            ["kprobe", "%return", "$argN", "BTF args"]
        );
    }
}
