//! The kernel's build configuration (`config-VERSION`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ParseError;
use crate::names::NameList;

/// One option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// `=y`.
    Yes,
    /// `=m`.
    Module,
    /// `# CONFIG_X is not set`.
    NotSet,
    /// `="text"` (unquoted here, escapes kept as written).
    Str(String),
    /// Any other value (numbers, hex) as written.
    Other(String),
}

/// The kernel configuration. Options are kept without their `CONFIG_`
/// prefix, in name lists for `y`, `m` and not set (cheap to load) and a
/// map for the rest (values as written, strings with their quotes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelConfig {
    /// Options set to `y`.
    pub yes: NameList,
    /// Options set to `m`.
    pub module: NameList,
    /// Options `# ... is not set`.
    pub not_set: NameList,
    /// Options with another value, as written (`"-amd64"`, `8192`, `0x1000`).
    pub values: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses a `.config` file.
    pub fn parse(text: &str) -> Result<KernelConfig, ParseError> {
        let (mut yes, mut module, mut not_set) = (Vec::new(), Vec::new(), Vec::new());
        let mut values = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(name) = comment
                    .trim()
                    .strip_suffix(" is not set")
                    .and_then(|name| name.strip_prefix("CONFIG_"))
                {
                    not_set.push(name);
                }
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .and_then(|(name, value)| Some((name.strip_prefix("CONFIG_")?, value)))
                .filter(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace))
                .ok_or_else(|| {
                    ParseError::new(
                        index + 1,
                        format!("expected `CONFIG_NAME=value`, found {line:?}"),
                    )
                })?;
            match value {
                "y" => yes.push(name),
                "m" => module.push(name),
                _ => {
                    values.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(KernelConfig {
            yes: NameList::from_lines(yes),
            module: NameList::from_lines(module),
            not_set: NameList::from_lines(not_set),
            values,
        })
    }

    /// An option's value; `name` with or without `CONFIG_`.
    pub fn get(&self, name: &str) -> Option<ConfigValue> {
        let name = name.strip_prefix("CONFIG_").unwrap_or(name);
        if self.yes.contains(name) {
            Some(ConfigValue::Yes)
        } else if self.module.contains(name) {
            Some(ConfigValue::Module)
        } else if self.not_set.contains(name) {
            Some(ConfigValue::NotSet)
        } else {
            let value = self.values.get(name)?;
            Some(
                match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(text) => ConfigValue::Str(text.to_owned()),
                    None => ConfigValue::Other(value.clone()),
                },
            )
        }
    }

    /// Whether an option is `y` or `m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        let name = name.strip_prefix("CONFIG_").unwrap_or(name);
        self.yes.contains(name) || self.module.contains(name)
    }

    /// The number of options the file mentions.
    pub fn len(&self) -> usize {
        self.yes.len() + self.module.len() + self.not_set.len() + self.values.len()
    }

    /// The file mentions no option.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        let config = KernelConfig::parse(
            "#\n# Automatically generated\nCONFIG_KPROBES=y\nCONFIG_E1000=m\n# CONFIG_HIST_TRIGGERS is not set\nCONFIG_LOCALVERSION=\"-amd64\"\nCONFIG_NR_CPUS=8192\n",
        )
        .unwrap();
        assert!(config.is_enabled("KPROBES") && config.is_enabled("CONFIG_E1000"));
        assert!(!config.is_enabled("HIST_TRIGGERS") && !config.is_enabled("NOPE"));
        assert_eq!(config.get("HIST_TRIGGERS"), Some(ConfigValue::NotSet));
        assert_eq!(config.get("CONFIG_KPROBES"), Some(ConfigValue::Yes));
        assert_eq!(
            config.get("LOCALVERSION"),
            Some(ConfigValue::Str("-amd64".into()))
        );
        assert_eq!(
            config.get("NR_CPUS"),
            Some(ConfigValue::Other("8192".into()))
        );
        assert_eq!(config.get("NOPE"), None);
        assert_eq!(config.len(), 5);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<KernelConfig>(&json).unwrap(), config);
        assert_eq!(
            KernelConfig::parse("CONFIG_A=y\nbogus\n").unwrap_err().line,
            2
        );
    }
}
