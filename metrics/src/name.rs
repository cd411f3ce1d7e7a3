//! Validation of the names users choose: group names, metric names, label keys and values.
//!
//! weir refuses a bad name where it is registered, instead of rewriting it silently (Flink
//! replaces characters in its reporters) or only logging a warning, so the user sees the
//! problem in their UDF's `open()`.

use crate::error::{MetricsError, NameKind, Result};

const NAME_RULE: &str =
    "use ASCII letters, digits and `_`, starting with a letter, at most 128 characters";
const LABEL_KEY_RULE: &str =
    "use ASCII letters, digits and `_`, starting with a letter (a leading `__` is reserved by Prometheus), at most 128 characters";
const LABEL_VALUE_RULE: &str =
    "use a non-empty string of at most 1024 bytes without control characters";

/// Maximum length of a group name, metric name or label key.
pub const MAX_NAME_LEN: usize = 128;
/// Maximum length of a label value in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Checks a group name or metric name.
///
/// ```
/// use weir_metrics::name::validate_name;
/// use weir_metrics::NameKind;
/// assert!(validate_name(NameKind::Metric, "rows_seen").is_ok());
/// let err = validate_name(NameKind::Metric, "rows seen").unwrap_err();
/// assert!(err.to_string().contains("use ASCII letters, digits and `_`"));
/// ```
pub fn validate_name(what: NameKind, name: &str) -> Result<()> {
    if is_name(name) {
        Ok(())
    } else {
        Err(MetricsError::InvalidName {
            what,
            name: name.to_string(),
            rule: NAME_RULE,
        })
    }
}

/// Checks a label key (a group variable).
pub fn validate_label_key(key: &str) -> Result<()> {
    if is_name(key) && !key.starts_with("__") {
        Ok(())
    } else {
        Err(MetricsError::InvalidName {
            what: NameKind::LabelKey,
            name: key.to_string(),
            rule: LABEL_KEY_RULE,
        })
    }
}

/// Label keys weir itself puts on user series (`job_name`, `operator`, `subtask`) and on the
/// samples of distributions (`quantile`, `le`): a key group may not use them, or a series
/// would carry the key twice (an exposition Prometheus refuses) or lose weir's value.
pub const RESERVED_LABEL_KEYS: [&str; 5] = ["job_name", "operator", "subtask", "quantile", "le"];

/// Checks the key of a key group (`add_group(key, value)`): a valid label key that weir does
/// not add itself ([`RESERVED_LABEL_KEYS`]).
pub fn validate_user_label_key(key: &str) -> Result<()> {
    validate_label_key(key)?;
    if RESERVED_LABEL_KEYS.contains(&key) {
        return Err(MetricsError::InvalidName {
            what: NameKind::LabelKey,
            name: key.to_string(),
            rule: "is a label weir adds itself (job_name, operator and subtask on every \
                   series, quantile and le on distributions); choose another key, e.g. \
                   `my_quantile`",
        });
    }
    Ok(())
}

/// Checks a label value.
pub fn validate_label_value(key: &str, value: &str) -> Result<()> {
    if !value.is_empty()
        && value.len() <= MAX_LABEL_VALUE_LEN
        && !value.chars().any(|c| c.is_control())
    {
        Ok(())
    } else {
        Err(MetricsError::InvalidLabelValue {
            key: key.to_string(),
            value: value.to_string(),
            rule: LABEL_VALUE_RULE,
        })
    }
}

/// A float as Prometheus formats `le` and `quantile` values it reads from the protobuf format
/// (Go's shortest `%g`, with `.0` added to a whole number): `1.0`, `0.001`, `2.5`, `1e+06`.
pub fn label_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let plain = format!("{v}");
    if plain.contains('.') {
        plain
    } else {
        plain + ".0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "rows_in", "A9_b", "x_"] {
            assert!(validate_name(NameKind::Group, ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "_a", "a b", "a-b", "a.b", "é", &"a".repeat(129)] {
            let e = validate_name(NameKind::Group, bad).unwrap_err();
            assert!(e.to_string().starts_with("group name `"), "{e}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        assert!(validate_label_key("country").is_ok());
        assert!(validate_label_key("__name__").is_err());
        assert!(validate_label_key("a-b").is_err());
        assert!(validate_label_value("k", "ünïcode \"quoted\" \\ ok").is_ok());
        assert!(validate_label_value("k", "").is_err());
        assert!(validate_label_value("k", "line\nbreak").is_err());
        let e = validate_label_value("k", &"x".repeat(1025)).unwrap_err();
        assert!(e.to_string().contains("for key `k`"), "{e}");
    }
}
