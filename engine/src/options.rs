//! The one reader of string options, for connector options (`WITH ('rows-per-second' =
//! '10')`) and configuration keys (`python.fn-execution.bundle.time`): numbers, booleans and
//! durations parsed the same way everywhere, errors that name the key, the value and what
//! was expected. Durations use the workspace's one parser, [`weir_metrics::config::parse_duration`]
//! (`1000` is milliseconds; `500 ms`, `10 s`, `1 min` also work).
//!
//! ```
//! use std::collections::BTreeMap;
//! use weir_engine::options::Options;
//!
//! let map = BTreeMap::from([("python.fn-execution.bundle.time".to_string(), "2 s".to_string())]);
//! let config = Options::config(&map);
//! let t = config.duration("python.fn-execution.bundle.time").unwrap();
//! assert_eq!(t, Some(std::time::Duration::from_secs(2)));
//! let e = config.number::<u64>("python.fn-execution.bundle.time").unwrap_err();
//! assert!(e.to_string().contains("'python.fn-execution.bundle.time' = '2 s'"));
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{EngineError, Result};

/// The most subtasks an operator may have (each is a task on the runtime; more than this on
/// one machine is a typo, not a plan).
pub const MAX_PARALLELISM: usize = 1024;

/// Whose options these are: errors say so.
#[derive(Clone, Copy, Debug)]
enum Owner<'a> {
    Table(&'a str),
    Config,
}

/// String options of a table or of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    map: &'a BTreeMap<String, String>,
    owner: Owner<'a>,
}

impl<'a> Options<'a> {
    /// The options of table `table` (`WITH (...)`).
    pub fn table(table: &'a str, map: &'a BTreeMap<String, String>) -> Self {
        Options {
            map,
            owner: Owner::Table(table),
        }
    }

    /// Configuration keys (`set_config`, `SET`, `get_config().set`).
    pub fn config(map: &'a BTreeMap<String, String>) -> Self {
        Options {
            map,
            owner: Owner::Config,
        }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).map(String::as_str)
    }

    /// An error about `key` = `value`, saying what was `expected`.
    pub fn invalid(&self, key: &str, value: &str, expected: &str) -> EngineError {
        match self.owner {
            Owner::Table(table) => EngineError::TableOption {
                table: table.into(),
                key: key.into(),
                detail: format!("expected {expected}, found '{value}'"),
            },
            Owner::Config => EngineError::Execution(format!(
                "configuration '{key}' = '{value}' is not valid: expected {expected}"
            )),
        }
    }

    fn parsed<T>(
        &self,
        key: &str,
        expected: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v.trim())
                .map(Some)
                .ok_or_else(|| self.invalid(key, v, expected)),
        }
    }

    /// A number (`i64`, `u64`, `usize`, `f64` ...).
    pub fn number<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        let expected = if std::any::type_name::<T>().starts_with('f') {
            "a number"
        } else {
            "a whole number"
        };
        self.parsed(key, expected, |v| v.parse().ok())
    }

    /// A whole number of at least `min`.
    pub fn at_least(&self, key: &str, min: u64) -> Result<Option<u64>> {
        self.parsed(key, &format!("a whole number of at least {min}"), |v| {
            v.parse::<u64>().ok().filter(|n| *n >= min)
        })
    }

    /// A whole number from `min` to `max`.
    pub fn between(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>> {
        self.parsed(key, &format!("a whole number from {min} to {max}"), |v| {
            v.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
        })
    }

    /// Subtasks per operator: from 1 to [`MAX_PARALLELISM`].
    pub fn parallelism(&self, key: &str) -> Result<Option<usize>> {
        Ok(self
            .between(key, 1, MAX_PARALLELISM as u64)?
            .map(|n| n as usize))
    }

    /// `true` or `false`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.parsed(key, "true or false", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        })
    }

    /// A duration (`1000` ms, `500 ms`, `10 s`, `1 min`).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.parsed(
            key,
            "a duration such as 1000, 500 ms or 10 s",
            weir_metrics::config::parse_duration,
        )
    }

    /// One of `choices`.
    pub fn choice(&self, key: &str, choices: &[&str], expected: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            Some(v) if !choices.contains(&v.trim()) => Err(self.invalid(key, v, expected)),
            other => Ok(other.map(str::trim)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table_and_config_errors_name_the_key_the_value_and_what_was_expected() {
        let m = map(&[("rows-per-second", "fast"), ("standard-error", "yes")]);
        let t = Options::table("clicks", &m);
        assert_eq!(
            t.number::<i64>("rows-per-second").unwrap_err().to_string(),
            "table `clicks`, option 'rows-per-second': expected a whole number, found 'fast'"
        );
        assert!(t
            .bool("standard-error")
            .unwrap_err()
            .to_string()
            .contains("expected true or false, found 'yes'"));
        assert_eq!(t.number::<i64>("missing").unwrap(), None);
        let c = Options::config(&m);
        assert_eq!(
            c.at_least("rows-per-second", 1).unwrap_err().to_string(),
            "configuration 'rows-per-second' = 'fast' is not valid: expected a whole number of at least 1"
        );
    }

    #[test]
    fn durations_read_as_everywhere_else_in_weir() {
        let m = map(&[("a", "250"), ("b", "2 s"), ("c", "1 min"), ("d", "soon")]);
        let c = Options::config(&m);
        assert_eq!(c.duration("a").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(c.duration("b").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(c.duration("c").unwrap(), Some(Duration::from_secs(60)));
        assert!(c.duration("d").is_err());
    }
}
