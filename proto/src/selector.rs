//! Label selectors, in Kubernetes' string syntax
//! (`app=web,tier!=db,env in (a,b),env notin (c),release,!legacy`) and as
//! the `LabelSelector` message (matchLabels + matchExpressions).
//!
//! An empty selector matches every object.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::api::LabelSelector;

/// A parsed selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals(String),
    NotEquals(String),
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

/// Why a selector string or message is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {given:?}: {reason}")]
pub struct SelectorError {
    pub given: String,
    pub reason: String,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Parses Kubernetes' selector syntax.
    ///
    /// # Errors
    /// [`SelectorError`] saying which part is malformed.
    pub fn parse(given: &str) -> Result<Selector, SelectorError> {
        let fail = |reason: String| SelectorError {
            given: given.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        for part in split_top_level(given).map_err(&fail)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).map_err(&fail)?);
        }
        Ok(Selector { requirements })
    }

    /// Converts a `LabelSelector` message.
    ///
    /// # Errors
    /// [`SelectorError`] for an unknown operator or a value list that does
    /// not fit the operator.
    pub fn from_message(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Op::Equals(v.clone()),
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        for (i, expr) in selector.match_expressions.iter().enumerate() {
            let fail = |reason: String| SelectorError {
                given: format!("matchExpressions[{i}]"),
                reason,
            };
            let values: BTreeSet<String> = expr.values.iter().cloned().collect();
            let op = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(fail(format!("operator {} needs at least one value", expr.operator)))
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(fail(format!("operator {} takes no values", expr.operator)))
                }
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(fail(format!(
                        "unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)"
                    )))
                }
            };
            requirements.push(Requirement {
                key: expr.key.clone(),
                op,
            });
        }
        Ok(Selector { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Op::Equals(v) => value == Some(v),
            Op::NotEquals(v) => value != Some(v),
            Op::In(values) => value.is_some_and(|v| values.contains(v)),
            Op::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(given: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in given.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&given[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_string());
    }
    parts.push(&given[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: checked_key(key.trim())?,
            op: Op::DoesNotExist,
        });
    }
    for (token, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let key = checked_key(key.trim())?;
            let value = value.trim().to_string();
            if value.contains(['=', '!', '(', ')', ' ']) {
                return Err(format!("{part:?} has an invalid value"));
            }
            let op = if negate {
                Op::NotEquals(value)
            } else {
                Op::Equals(value)
            };
            return Ok(Requirement { key, op });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = checked_key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement { key, op: Op::Exists });
    };
    let (word, list) = rest
        .split_once('(')
        .ok_or_else(|| format!("{part:?}: expected 'in (...)' or 'notin (...)'"))?;
    let list = list.strip_suffix(')').ok_or_else(|| format!("{part:?}: missing ')'"))?;
    let values: BTreeSet<String> = list
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("{part:?}: the value list is empty"));
    }
    let op = match word.trim() {
        "in" => Op::In(values),
        "notin" => Op::NotIn(values),
        other => return Err(format!("{part:?}: unknown operator {other:?} (use in or notin)")),
    };
    Ok(Requirement { key, op })
}

fn checked_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("a requirement has no key".to_string());
    }
    if key.contains(|c: char| c.is_whitespace() || "=!(),".contains(c)) {
        return Err(format!("{key:?} is not a valid label key"));
    }
    Ok(key.to_string())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let join = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
            match &r.op {
                Op::Equals(v) => write!(f, "{}={v}", r.key)?,
                Op::NotEquals(v) => write!(f, "{}!={v}", r.key)?,
                Op::In(values) => write!(f, "{} in ({})", r.key, join(values))?,
                Op::NotIn(values) => write!(f, "{} notin ({})", r.key, join(values))?,
                Op::Exists => write!(f, "{}", r.key)?,
                Op::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_operator_matches_as_in_kubernetes() {
        let web = labels(&[("app", "web"), ("env", "prod"), ("release", "1")]);
        let db = labels(&[("app", "db"), ("legacy", "yes")]);
        let cases = [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("env in (prod, staging)", true, false),
            ("env notin (prod)", false, true),
            ("release", true, false),
            ("!legacy", true, false),
            ("app=web,env in (prod),!legacy", true, false),
        ];
        for (selector, on_web, on_db) in cases {
            let parsed = Selector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&web), on_web, "{selector} on web");
            assert_eq!(parsed.matches(&db), on_db, "{selector} on db");
        }
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        for bad in ["env in (a", "env in ()", "env within (a)", "=x", "a=b=c", "env in a)"] {
            let err = Selector::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid label selector"), "{bad}: {err}");
        }
    }

    #[test]
    fn message_form_matches_like_the_string_form() {
        let message = LabelSelector {
            match_labels: [("app".to_string(), "web".to_string())].into(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "NotIn".into(),
                values: vec!["dev".into()],
            }],
        };
        let selector = Selector::from_message(&message).unwrap();
        assert_eq!(selector.to_string(), "app=web,env notin (dev)");
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "dev")])));
        let bad = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Near".into(),
                values: vec![],
            }],
            ..Default::default()
        };
        assert!(Selector::from_message(&bad).is_err());
    }

    #[test]
    fn display_round_trips() {
        let text = "app=web,tier!=db,env in (a,b),!legacy,release";
        assert_eq!(Selector::parse(text).unwrap().to_string(), text);
    }
}
