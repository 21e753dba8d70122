//! The kernel's build configuration (`config-VERSION`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// One option's value.
///
/// Serialised as the config file writes it: `y`, `m`, `n` (not set), a
/// quoted string, or the number's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
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

impl From<ConfigValue> for String {
    fn from(value: ConfigValue) -> String {
        match value {
            ConfigValue::Yes => "y".to_owned(),
            ConfigValue::Module => "m".to_owned(),
            ConfigValue::NotSet => "n".to_owned(),
            ConfigValue::Str(text) => format!("\"{text}\""),
            ConfigValue::Other(text) => text,
        }
    }
}

impl From<String> for ConfigValue {
    fn from(text: String) -> ConfigValue {
        match text.as_str() {
            "y" => ConfigValue::Yes,
            "m" => ConfigValue::Module,
            "n" => ConfigValue::NotSet,
            _ => match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(inner) => ConfigValue::Str(inner.to_owned()),
                None => ConfigValue::Other(text),
            },
        }
    }
}

/// The kernel configuration: option name (with `CONFIG_`) to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KernelConfig {
    /// Every option the file mentions.
    pub options: BTreeMap<String, ConfigValue>,
}

impl KernelConfig {
    /// Parses a `.config` file.
    pub fn parse(text: &str) -> Result<KernelConfig, ParseError> {
        let mut options = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(name) = comment
                    .trim()
                    .strip_suffix(" is not set")
                    .filter(|name| name.starts_with("CONFIG_"))
                {
                    options.insert(name.to_owned(), ConfigValue::NotSet);
                }
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .filter(|(name, _)| name.starts_with("CONFIG_"))
                .ok_or_else(|| {
                    ParseError::new(
                        index + 1,
                        format!("expected `CONFIG_NAME=value`, found {line:?}"),
                    )
                })?;
            options.insert(name.to_owned(), ConfigValue::from(value.to_owned()));
        }
        Ok(KernelConfig { options })
    }

    /// An option's value; `name` with or without `CONFIG_`.
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        match name.strip_prefix("CONFIG_") {
            Some(_) => self.options.get(name),
            None => self.options.get(&format!("CONFIG_{name}")),
        }
    }

    /// Whether an option is `y` or `m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some(ConfigValue::Yes | ConfigValue::Module))
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
        assert_eq!(config.get("HIST_TRIGGERS"), Some(&ConfigValue::NotSet));
        assert_eq!(
            config.get("LOCALVERSION"),
            Some(&ConfigValue::Str("-amd64".into()))
        );
        assert_eq!(
            config.get("NR_CPUS"),
            Some(&ConfigValue::Other("8192".into()))
        );
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<KernelConfig>(&json).unwrap(), config);
        assert_eq!(
            KernelConfig::parse("CONFIG_A=y\nbogus\n").unwrap_err().line,
            2
        );
    }
}
