//! Reads configuration from the environment through a [`Lookup`], so tests
//! pass a map and never touch the process environment.
//!
//! Every setting is read with its documented default next to it
//! (`ENV_X` / `DEFAULT_X` in each function's config module), and a bad value
//! fails at start with an error naming the variable and the reason.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// Where settings come from.
pub trait Lookup {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Lookup for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Lookup for HashMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).map(|v| (*v).to_owned())
    }
}

/// A setting that is missing or cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{key} is required but not set: {hint}")]
    Missing { key: String, hint: String },
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// Typed accessors over a [`Lookup`]. Empty values count as unset.
pub struct Settings<'a> {
    lookup: &'a dyn Lookup,
}

impl<'a> Settings<'a> {
    pub fn new(lookup: &'a dyn Lookup) -> Self {
        Self { lookup }
    }

    /// The raw value, treating an empty string as unset.
    pub fn optional(&self, key: &str) -> Option<String> {
        self.lookup.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.optional(key).unwrap_or_else(|| default.to_owned())
    }

    pub fn required(&self, key: &str, hint: &str) -> Result<String, SettingError> {
        self.optional(key).ok_or_else(|| SettingError::Missing {
            key: key.to_owned(),
            hint: hint.to_owned(),
        })
    }

    /// Parses the value with `FromStr`, or returns `default` when unset.
    pub fn parsed<T>(&self, key: &str, default: T) -> Result<T, SettingError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(key) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| SettingError::Invalid {
                    key: key.to_owned(),
                    value: raw.clone(),
                    reason: e.to_string(),
                }),
        }
    }

    /// A duration in milliseconds.
    pub fn millis(&self, key: &str, default_ms: u64) -> Result<Duration, SettingError> {
        self.parsed(key, default_ms).map(Duration::from_millis)
    }

    /// `true`/`false`/`1`/`0`/`yes`/`no`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, SettingError> {
        match self.optional(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(SettingError::Invalid {
                key: key.to_owned(),
                value: v,
                reason: "expected true or false".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let map = env(&[("EMPTY", "  ")]);
        let s = Settings::new(&map);
        assert_eq!(s.string("MISSING", "dflt"), "dflt");
        assert_eq!(s.string("EMPTY", "dflt"), "dflt");
        assert_eq!(s.parsed("MISSING", 7u16).unwrap(), 7);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let map = env(&[("PORT", "eighty"), ("ON", "maybe")]);
        let s = Settings::new(&map);
        let err = s.parsed::<u16>("PORT", 80).unwrap_err().to_string();
        assert!(err.contains("PORT=\"eighty\""), "{err}");
        assert!(s.flag("ON", false).unwrap_err().to_string().contains("ON"));
    }

    #[test]
    fn required_reports_hint() {
        let map = env(&[]);
        let err = Settings::new(&map)
            .required("DATABASE_URL", "set it")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL is required but not set: set it"
        );
    }

    #[test]
    fn durations_and_flags_parse() {
        let map = env(&[("T", "250"), ("F", "YES")]);
        let s = Settings::new(&map);
        assert_eq!(s.millis("T", 1).unwrap(), Duration::from_millis(250));
        assert!(s.flag("F", false).unwrap());
    }
}
