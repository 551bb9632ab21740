//! audit's configuration.

use service::config::CommonConfig;
use settings::{SettingError, Settings};

pub const DEFAULT_PORT: u16 = 8081;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, SettingError> {
        Ok(Self {
            common: CommonConfig::from_settings(s, DEFAULT_PORT)?,
        })
    }
}
