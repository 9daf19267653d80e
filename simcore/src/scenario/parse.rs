//! From text to a [`Scenario`]: reading the file, serde's pass (with the hand-written
//! readers of durations, offsets, rates and `expect`), then validation.

use super::error::{field_in_message, key_on_line, line_col};
use super::validate::validate;
use super::*;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::Path;

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Expect;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"pass\", \"violation\", or { violation = [\"check_kind\", ...] }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Expect, E> {
                match text {
                    "pass" => Ok(Expect::Pass),
                    "violation" => Ok(Expect::Violation),
                    _ => Err(E::custom(format!(
                        "expected \"pass\", \"violation\" or {{ violation = [...] }}, got \"{text}\""
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Expect, A::Error> {
                let mut kinds: Option<Vec<CheckKind>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "violation" || kinds.is_some() {
                        return Err(de::Error::custom(format!(
                            "expected only `violation = [...]` in `expect`, got `{key}`"
                        )));
                    }
                    kinds = Some(map.next_value()?);
                }
                match kinds {
                    Some(kinds) if !kinds.is_empty() => Ok(Expect::Checks(kinds)),
                    _ => Err(de::Error::custom(
                        "`expect = { violation = [...] }` needs at least one check kind",
                    )),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        nodes::duration::parse(&text)
            .map(Dur)
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        nodes::duration::parse_signed_ms(&text)
            .map(Offset)
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let expected = || {
            de::Error::custom(format!(
                "expected a rate like \"20/s\" or \"600/m\", got \"{text}\""
            ))
        };
        let (count, unit) = text.split_once('/').ok_or_else(expected)?;
        let count: f64 = count.trim().parse().map_err(|_| expected())?;
        let per_second = match unit.trim() {
            "s" => count,
            "m" => count / 60.0,
            _ => return Err(expected()),
        };
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(expected());
        }
        Ok(Rate(per_second))
    }
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        col: 0,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses and validates scenario text; `file` is used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let at = |span: Range<usize>, key: Option<&str>, message: String| {
        let (line, col) = line_col(text, span.start);
        ScenarioError {
            file: file.to_string(),
            line,
            col,
            key: key
                .map(str::to_string)
                .or_else(|| key_on_line(text, span.start)),
            message,
        }
    };
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let key = field_in_message(&message);
        at(span, key.as_deref(), message)
    })?;
    validate(&scenario).map_err(|(span, key, message)| at(span, Some(key), message))?;
    Ok(scenario)
}
