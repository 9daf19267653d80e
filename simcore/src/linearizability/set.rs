//! Jepsen's set checker (also Maelstrom's broadcast): clients `:add` elements (`:broadcast`
//! in Maelstrom), and a final `:read` returns the set (any collection). Every acknowledged
//! add must be in the final read, and the read may hold nothing that nobody tried to add.
//!
//! This is not a linearizability model: only the last `:ok` read in the file counts
//! (Jepsen's `set`), and when elements became visible is not judged. As in Jepsen:
//! *lost* elements were acknowledged (`:ok`) but are missing from the final read;
//! *unexpected* ones were read but never added by any invoke; *recovered* ones were read
//! although their add did not return `:ok` (`:info`, `:fail` or no completion): not an
//! error, since a timed-out add may have happened. Valid iff nothing is lost or unexpected;
//! with no `:ok` read at all there is nothing to judge, and the verdict is unknown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::history::Value;
use super::load::{read_events, read_file, to_value, EventKind, Function, InputError};

/// The final read the verdict is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalRead {
    /// The line of its `:ok` event.
    pub line: usize,
    /// The process that read.
    pub process: u64,
    /// How many distinct elements it returned.
    pub elements: usize,
}

/// What the set checker found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetReport {
    /// Distinct elements some client tried to add.
    pub attempted: usize,
    /// Distinct elements whose add was acknowledged (`:ok`).
    pub acknowledged: usize,
    /// The last `:ok` read, if there was one.
    pub final_read: Option<FinalRead>,
    /// Acknowledged but not in the final read, each with the line of its acknowledgement.
    pub lost: Vec<(String, usize)>,
    /// In the final read but never attempted.
    pub unexpected: Vec<String>,
    /// In the final read although their add was never acknowledged.
    pub recovered: Vec<String>,
}

impl SetReport {
    /// `Some(true)` valid, `Some(false)` not, `None` when nothing was read.
    pub fn valid(&self) -> Option<bool> {
        self.final_read
            .as_ref()
            .map(|_| self.lost.is_empty() && self.unexpected.is_empty())
    }
}

const SHOWN: usize = 20;

fn list(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    write!(f, "{}", shown.join(" "))?;
    if items.len() > SHOWN {
        write!(f, " ... ({} more)", items.len() - SHOWN)?;
    }
    Ok(())
}

impl fmt::Display for SetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(read) = &self.final_read else {
            return writeln!(
                f,
                "unknown: the set was never read (no :ok :read), so nothing can be judged \
                 ({} elements attempted, {} acknowledged)",
                self.attempted, self.acknowledged
            );
        };
        let verdict = if self.valid() == Some(true) {
            "valid"
        } else {
            "NOT valid"
        };
        writeln!(
            f,
            "{verdict}: {} elements attempted, {} acknowledged; final read (line {}, process \
             {}) holds {}",
            self.attempted, self.acknowledged, read.line, read.process, read.elements
        )?;
        write!(
            f,
            "  lost ({}, acknowledged but not read):",
            self.lost.len()
        )?;
        if !self.lost.is_empty() {
            f.write_str(" ")?;
            let lost: Vec<String> = self
                .lost
                .iter()
                .map(|(element, line)| format!("{element} (ok on line {line})"))
                .collect();
            list(f, &lost)?;
        }
        writeln!(f)?;
        write!(
            f,
            "  unexpected ({}, read but never added):",
            self.unexpected.len()
        )?;
        if !self.unexpected.is_empty() {
            f.write_str(" ")?;
            list(f, &self.unexpected)?;
        }
        writeln!(f)?;
        write!(
            f,
            "  recovered ({}, read although not acknowledged):",
            self.recovered.len()
        )?;
        if !self.recovered.is_empty() {
            f.write_str(" ")?;
            list(f, &self.recovered)?;
        }
        writeln!(f)
    }
}

/// Checks the set history in `text` (same formats as [`parse_history`](super::parse_history)).
pub fn check_set(text: &str) -> Result<SetReport, InputError> {
    let (_, events, _) = read_events(text)?;
    let mut attempted: BTreeSet<Value> = BTreeSet::new();
    let mut acknowledged: BTreeMap<Value, usize> = BTreeMap::new();
    let mut open: HashMap<u64, (Function, Value)> = HashMap::new();
    let mut final_read: Option<(FinalRead, BTreeSet<Value>)> = None;
    for event in &events {
        let at = |message: String| InputError::at(event.value_at.0, event.value_at.1, message);
        match (event.function, event.kind) {
            (Function::Add | Function::Read, EventKind::Invoke) => {
                let value = to_value(&event.value);
                if event.function == Function::Add {
                    attempted.insert(value.clone());
                }
                open.insert(event.process, (event.function, value));
            }
            (Function::Add, EventKind::Ok) => {
                let value = match open.remove(&event.process) {
                    Some((Function::Add, value)) => value,
                    _ => to_value(&event.value),
                };
                acknowledged.entry(value).or_insert(event.line);
            }
            (Function::Read, EventKind::Ok) => {
                open.remove(&event.process);
                let items = event.value.untagged().items().ok_or_else(|| {
                    at(format!(
                        "expected the set read (a set, vector or list), found {}",
                        event.value.describe()
                    ))
                })?;
                let elements: BTreeSet<Value> = items.iter().map(to_value).collect();
                let read = FinalRead {
                    line: event.line,
                    process: event.process,
                    elements: elements.len(),
                };
                final_read = Some((read, elements));
            }
            (Function::Add | Function::Read, _) => {
                open.remove(&event.process);
            }
            (other, _) => {
                return Err(InputError::at(
                    event.function_at.0,
                    event.function_at.1,
                    format!(
                        "`{}` is not a set operation (add or broadcast, read): use another --model",
                        other.name()
                    ),
                ))
            }
        }
    }
    let mut report = SetReport {
        attempted: attempted.len(),
        acknowledged: acknowledged.len(),
        final_read: None,
        lost: Vec::new(),
        unexpected: Vec::new(),
        recovered: Vec::new(),
    };
    if let Some((read, elements)) = final_read {
        report.lost = acknowledged
            .iter()
            .filter(|(element, _)| !elements.contains(element))
            .map(|(element, line)| (element.to_string(), *line))
            .collect();
        report.unexpected = elements
            .iter()
            .filter(|element| !attempted.contains(element))
            .map(Value::to_string)
            .collect();
        report.recovered = elements
            .iter()
            .filter(|element| attempted.contains(element) && !acknowledged.contains_key(element))
            .map(Value::to_string)
            .collect();
        report.final_read = Some(read);
    }
    Ok(report)
}

/// [`check_set`] on a file.
pub fn check_set_file(path: &Path) -> Result<SetReport, InputError> {
    let file = path.display().to_string();
    check_set(&read_file(path)?).map_err(|error| error.in_file(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_acknowledged_add_read_is_valid() {
        // 1 and 2 acknowledged, 3 timed out but was read anyway (recovered, fine).
        let text = "\
{:process 0, :type :invoke, :f :add, :value 1}
{:process 0, :type :ok, :f :add, :value 1}
{:process 1, :type :invoke, :f :add, :value 2}
{:process 1, :type :ok, :f :add, :value 2}
{:process 2, :type :invoke, :f :add, :value 3}
{:process 2, :type :info, :f :add, :value 3}
{:process :nemesis, :type :info, :f :start, :value {:n1 [:n2]}}
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value #{1 2 3}}
";
        let report = check_set(text).unwrap();
        assert_eq!(report.valid(), Some(true), "{report}");
        assert_eq!(report.recovered, vec!["3".to_string()]);
        assert_eq!((report.attempted, report.acknowledged), (3, 2));
    }

    #[test]
    fn lost_and_unexpected_elements_are_named() {
        // Maelstrom broadcast: 2 was acknowledged but the final read misses it; 9 was never
        // broadcast. Only the last read counts.
        let text = "\
[{:process 0, :type :invoke, :f :broadcast, :value 1}
 {:process 0, :type :ok, :f :broadcast, :value 1}
 {:process 1, :type :invoke, :f :broadcast, :value 2}
 {:process 1, :type :ok, :f :broadcast, :value 2}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value [1 2]}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value [1 9]}]
";
        let report = check_set(text).unwrap();
        assert_eq!(report.valid(), Some(false));
        assert_eq!(report.lost, vec![("2".to_string(), 4)]);
        assert_eq!(report.unexpected, vec!["9".to_string()]);
        let text = report.to_string();
        assert!(
            text.contains("lost (1, acknowledged but not read): 2 (ok on line 4)"),
            "{text}"
        );
    }

    #[test]
    fn never_read_is_unknown_and_bad_reads_are_positioned() {
        let report = check_set("{:process 0, :type :invoke, :f :add, :value 1}").unwrap();
        assert_eq!(report.valid(), None);
        let error = check_set(
            "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok, :f :read, :value 3}",
        )
        .unwrap_err();
        assert_eq!((error.line, error.col), (2, 42));
    }
}
