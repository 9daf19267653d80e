//! The EDN-like history format: one Clojure map per line, as Jepsen prints histories.
//!
//! ```text
//! {:process 3, :type :invoke, :f :append, :key "7", :value "x 3 17 y"}
//! {:process 3, :type :ok, :f :append, :key "7", :value "x 3 17 y"}
//! {:process 1, :type :invoke, :f :cas, :key "a", :value [1 2], :time 1500}
//! ```
//!
//! Keys of a map: `:process` (integer; lines whose process is a keyword such as
//! `:nemesis` are skipped), `:type` (`:invoke`, `:ok`, `:fail`, `:info`), `:f` (`:read`,
//! `:write`, `:cas` for registers, `:get`, `:put`, `:append` for string maps), `:key`
//! (string or integer; required by `get`/`put`/`append`, optional on register operations,
//! where it names one register of a map of registers), `:value` (`nil`, integer, string, or
//! `[expected new]` for `cas`; default `nil`) and `:time` (non-negative integer, e.g.
//! nanoseconds). Any order; other keys (`:index`, `:error`, ...) are ignored. Either every
//! event has `:time` or none has, and then line order is time order. Commas are whitespace;
//! blank lines and lines starting with `;` are skipped.
//!
//! The writer emits exactly these keys, always with `:time`, so a history written by
//! [`write_edn`] reads back to the same operations, with two normalizations: a completed
//! write / put / append of unknown output is written `:ok` (it took effect either way), and
//! a completed CAS of unknown output is written `:info` (open to the end, which only allows
//! more orders). An open operation's `:info` line goes just before its process's next
//! invoke, or at the end.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

use super::history::{write_quoted, Input, JepsenOperation, Output};
use super::load::{pair_events, EventKind, Format, Function, InputError, LoadedHistory, RawEvent};

/// An EDN value, as far as histories need them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Keyword(String),
    Vector(Vec<Edn>),
}

impl Edn {
    /// A short description for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".to_string(),
            Edn::Bool(value) => value.to_string(),
            Edn::Int(number) => format!("the integer {number}"),
            Edn::Str(_) => "a string".to_string(),
            Edn::Keyword(name) => format!("the keyword :{name}"),
            Edn::Vector(items) => format!("a vector of {} items", items.len()),
        }
    }
}

/// A position in one line of input, with positioned errors.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    position: usize,
    line: usize,
}

fn is_delimiter(character: char) -> bool {
    character.is_whitespace() || matches!(character, ',' | '[' | ']' | '{' | '}' | '"')
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str, line: usize) -> Cursor<'a> {
        Cursor {
            text,
            position: 0,
            line,
        }
    }

    /// The 1-based column (in characters) of the current position.
    pub(crate) fn col(&self) -> usize {
        self.text[..self.position].chars().count() + 1
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> InputError {
        InputError::at(self.line, self.col(), message)
    }

    fn error_at(&self, col: usize, message: impl Into<String>) -> InputError {
        InputError::at(self.line, col, message)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.position += character.len_utf8();
        Some(character)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.position >= self.text.len()
    }

    /// Skips whitespace, and commas when `commas` (EDN treats them as whitespace).
    /// Returns whether anything was skipped.
    pub(crate) fn skip_space(&mut self, commas: bool) -> bool {
        let start = self.position;
        while let Some(character) = self.peek() {
            if character.is_whitespace() || (commas && character == ',') {
                self.bump();
            } else {
                break;
            }
        }
        self.position > start
    }

    /// Consumes `word` or fails with "expected `word`".
    pub(crate) fn expect_word(&mut self, word: &str) -> Result<(), InputError> {
        if self.rest().starts_with(word) {
            self.position += word.len();
            Ok(())
        } else {
            Err(self.error(format!("expected `{word}`")))
        }
    }

    /// Requires whitespace here (a field separator), naming what should follow it.
    pub(crate) fn expect_space(&mut self, next: &str) -> Result<(), InputError> {
        if self.skip_space(false) {
            Ok(())
        } else {
            Err(self.error(format!("expected whitespace, then {next}")))
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.position;
        while let Some(character) = self.peek() {
            if is_delimiter(character) {
                break;
            }
            self.bump();
        }
        &self.text[start..self.position]
    }

    /// Reads a keyword (`:name`) and returns its name, or fails saying what was expected.
    pub(crate) fn keyword(&mut self, expected: &str) -> Result<&'a str, InputError> {
        if self.peek() != Some(':') {
            return Err(self.error(format!("expected {expected}")));
        }
        let col = self.col();
        self.bump();
        let name = self.token();
        if name.is_empty() {
            return Err(self.error_at(col, format!("expected {expected}")));
        }
        Ok(name)
    }

    /// Reads one EDN value; returns it with the column it started at.
    pub(crate) fn value(&mut self) -> Result<(Edn, usize), InputError> {
        let col = self.col();
        let expected =
            "expected a value (nil, true, false, an integer, a string, a keyword or a vector)";
        let value = match self.peek() {
            None => return Err(self.error(expected)),
            Some('"') => Edn::Str(self.string()?),
            Some(':') => Edn::Keyword(self.keyword("a keyword")?.to_string()),
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip_space(true);
                    match self.peek() {
                        Some(']') => {
                            self.bump();
                            break;
                        }
                        None => return Err(self.error("expected `]` to close the vector")),
                        Some(_) => items.push(self.value()?.0),
                    }
                }
                Edn::Vector(items)
            }
            Some('{') => return Err(self.error("nested maps are not supported here")),
            Some(_) => {
                let token = self.token();
                match token {
                    "" => return Err(self.error(expected)),
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    _ if token.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                        Edn::Int(token.parse().map_err(|_| {
                            self.error_at(col, format!("expected an integer, found `{token}`"))
                        })?)
                    }
                    _ => return Err(self.error_at(col, format!("{expected}, found `{token}`"))),
                }
            }
        };
        Ok((value, col))
    }

    fn string(&mut self) -> Result<String, InputError> {
        let start_col = self.col();
        self.bump();
        let mut text = String::new();
        loop {
            let escape_col = self.col();
            match self.bump() {
                None => {
                    return Err(self.error_at(
                        start_col,
                        "expected a closing `\"` for the string opened here",
                    ))
                }
                Some('"') => return Ok(text),
                Some('\\') => match self.bump() {
                    Some('"') => text.push('"'),
                    Some('\\') => text.push('\\'),
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('r') => text.push('\r'),
                    _ => {
                        return Err(self.error_at(
                            escape_col,
                            "expected an escape: \\\", \\\\, \\n, \\t or \\r",
                        ))
                    }
                },
                Some(character) => text.push(character),
            }
        }
    }
}

/// One `{...}` line: its entries with the column of each value, and the map's column.
struct MapLine {
    col: usize,
    entries: HashMap<String, (Edn, usize)>,
}

fn parse_map(cursor: &mut Cursor<'_>) -> Result<MapLine, InputError> {
    cursor.skip_space(false);
    let col = cursor.col();
    if cursor.peek() != Some('{') {
        return Err(cursor.error("expected `{` to open a map"));
    }
    cursor.bump();
    let mut entries = HashMap::new();
    loop {
        cursor.skip_space(true);
        if cursor.peek() == Some('}') {
            cursor.bump();
            break;
        }
        if cursor.at_end() {
            return Err(cursor.error("expected `}` to close the map"));
        }
        let key_col = cursor.col();
        let key = cursor.keyword("a keyword key (like :process) or `}`")?;
        cursor.skip_space(true);
        let value = cursor.value()?;
        if entries.insert(key.to_string(), value).is_some() {
            return Err(cursor.error_at(key_col, format!("duplicate key :{key}")));
        }
    }
    cursor.skip_space(true);
    if !cursor.at_end() {
        return Err(cursor.error("expected the end of the line after the map"));
    }
    Ok(MapLine { col, entries })
}

/// Parses a whole EDN history (one map per line).
pub(crate) fn parse_edn(text: &str) -> Result<LoadedHistory, InputError> {
    let mut events = Vec::new();
    let mut timed: Option<bool> = None;
    let mut last_time = 0u64;
    for (index, line_text) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = line_text.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let mut cursor = Cursor::new(line_text, line);
        let map = parse_map(&mut cursor)?;
        let at = |col: usize, message: String| InputError::at(line, col, message);
        let field = |name: &str| {
            map.entries
                .get(name)
                .ok_or_else(|| at(map.col, format!("expected a :{name} entry in the map")))
        };
        let process = match field("process")? {
            (Edn::Int(number), col) => {
                u64::try_from(*number).map_err(|_| at(*col, "expected a process id ≥ 0".into()))?
            }
            (Edn::Keyword(_), _) => continue, // :nemesis and friends: not client operations
            (other, col) => {
                return Err(at(
                    *col,
                    format!("expected an integer process id, found {}", other.describe()),
                ))
            }
        };
        let keyword = |name: &str, expected: &str| -> Result<(String, usize), InputError> {
            match field(name)? {
                (Edn::Keyword(keyword), col) => Ok((keyword.clone(), *col)),
                (other, col) => Err(at(
                    *col,
                    format!("expected {expected}, found {}", other.describe()),
                )),
            }
        };
        let expected_kind = ":invoke, :ok, :fail or :info";
        let (kind_name, kind_col) = keyword("type", expected_kind)?;
        let kind = EventKind::parse(&kind_name).ok_or_else(|| {
            at(
                kind_col,
                format!("expected {expected_kind}, found :{kind_name}"),
            )
        })?;
        let expected_function = ":read, :write, :cas, :get, :put or :append";
        let (function_name, function_col) = keyword("f", expected_function)?;
        let function = Function::parse(&function_name).ok_or_else(|| {
            at(
                function_col,
                format!("expected {expected_function}, found :{function_name}"),
            )
        })?;
        let key = match map.entries.get("key") {
            None | Some((Edn::Nil, _)) => None,
            Some((Edn::Str(text), _)) => Some(text.as_str().into()),
            Some((Edn::Int(number), _)) => Some(number.to_string().into()),
            Some((other, col)) => {
                return Err(at(
                    *col,
                    format!(
                        "expected a string or integer key, found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let (value, value_col) = map
            .entries
            .get("value")
            .cloned()
            .unwrap_or((Edn::Nil, map.col));
        let time = match (map.entries.get("time"), timed) {
            (Some((Edn::Int(time), col)), None | Some(true)) => {
                let time = u64::try_from(*time)
                    .map_err(|_| at(*col, "expected a :time ≥ 0".to_string()))?;
                if time < last_time {
                    return Err(at(
                        *col,
                        format!("expected a :time ≥ {last_time} (the previous event's): times must not go backwards"),
                    ));
                }
                timed = Some(true);
                time
            }
            (Some((other, col)), None | Some(true)) => {
                return Err(at(
                    *col,
                    format!("expected an integer :time, found {}", other.describe()),
                ))
            }
            (None, None | Some(false)) => {
                timed = Some(false);
                events.len() as u64
            }
            (Some((_, col)), Some(false)) => {
                return Err(at(
                    *col,
                    "unexpected :time: earlier events have none (all or none must)".to_string(),
                ))
            }
            (None, Some(true)) => {
                return Err(at(
                    map.col,
                    "expected a :time entry: earlier events have one (all or none must)"
                        .to_string(),
                ))
            }
        };
        last_time = time;
        events.push(RawEvent {
            line,
            process,
            kind,
            function,
            function_col,
            key,
            value,
            value_col,
            time,
        });
    }
    pair_events(events, Format::Edn)
}

/// Writes a history as EDN maps, one per line, two lines per operation (invoke, then its
/// completion: `:ok`, `:fail` for a completed read of unknown output or a failed CAS, or
/// `:info` for an open operation), in time order, with `:time`. See the module doc.
pub fn write_edn<W: io::Write>(out: &mut W, history: &[JepsenOperation]) -> io::Result<()> {
    out.write_all(edn_string(history).as_bytes())
}

/// [`write_edn`] into a `String`.
pub fn edn_string(history: &[JepsenOperation]) -> String {
    // (time, class, operation, is completion): completions of operations called earlier
    // come before calls at the same time (a process may invoke when its last call returns);
    // an operation's own call comes before its completion.
    let mut events: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(history.len() * 2);
    for (index, operation) in history.iter().enumerate() {
        events.push((operation.call, 1, index, false));
        if let Some(ret) = operation.ret {
            let class = if ret > operation.call { 0 } else { 1 };
            events.push((ret, class, index, true));
        }
    }
    events.sort_unstable();
    let mut text = String::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut last_time = 0;
    for &(time, _, index, completion) in &events {
        let operation = &history[index];
        last_time = time;
        if completion {
            write_line(&mut text, operation, Line::Completion, time);
        } else {
            if let Some(previous) = open.remove(&operation.client) {
                write_line(&mut text, &history[previous], Line::Info, time);
            }
            write_line(&mut text, operation, Line::Invoke, time);
            if operation.ret.is_none() {
                open.insert(operation.client, index);
            }
        }
    }
    let mut still_open: Vec<usize> = open.into_values().collect();
    still_open.sort_unstable();
    for index in still_open {
        write_line(&mut text, &history[index], Line::Info, last_time);
    }
    text
}

enum Line {
    Invoke,
    Completion,
    Info,
}

fn write_line(text: &mut String, operation: &JepsenOperation, line: Line, time: u64) {
    let input = &operation.input;
    let kind = match line {
        Line::Invoke => "invoke",
        Line::Info => "info",
        Line::Completion => match (input, &operation.output) {
            (_, Some(Output::Cas(false))) => "fail",
            (Input::Read { .. } | Input::Get { .. }, None) => "fail",
            (Input::Cas { .. }, None) => "info",
            _ => "ok",
        },
    };
    let _ = write!(
        text,
        "{{:process {}, :type :{kind}, :f :{}",
        operation.client,
        input.function()
    );
    if let Some(key) = input.key() {
        text.push_str(", :key ");
        let _ = write_quoted(text, key);
    }
    text.push_str(", :value ");
    let _ = match input {
        Input::Read { .. } | Input::Get { .. } => match (&line, &operation.output) {
            (Line::Completion, Some(Output::Value(value))) => write!(text, "{value}"),
            _ => write!(text, "nil"),
        },
        Input::Write { value, .. } => write!(text, "{value}"),
        Input::Cas { expected, new, .. } => write!(text, "[{expected} {new}]"),
        Input::Put { value, .. } | Input::Append { value, .. } => write_quoted(text, value),
    };
    let _ = writeln!(text, ", :time {time}}}");
}

#[cfg(test)]
mod tests {
    use super::super::history::{Operation, Value};
    use super::super::load::parse_history;
    use super::*;

    fn error_of(text: &str) -> (usize, usize, String) {
        let error = parse_history(text).unwrap_err();
        (error.line, error.col, error.message)
    }

    #[test]
    fn reads_the_corpus_kv_lines() {
        let text = "\
{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}
{:process 1, :type :invoke, :f :get, :key \"9\", :value nil}
{:process 1, :type :ok, :f :get, :key \"9\", :value \"\"}
{:process 9, :type :ok, :f :append, :key \"0\", :value \"x 9 0 y\"}
";
        let history = parse_history(text).unwrap();
        assert_eq!(
            history.operations,
            vec![
                Operation {
                    client: 9,
                    input: Input::Append {
                        key: "0".into(),
                        value: "x 9 0 y".into()
                    },
                    output: Some(Output::Done),
                    call: 0,
                    ret: Some(3),
                },
                Operation {
                    client: 1,
                    input: Input::Get { key: "9".into() },
                    output: Some(Output::Value(Value::str(""))),
                    call: 1,
                    ret: Some(2),
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_give_line_and_column() {
        let good = "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n";
        // Unclosed map on line 2: the error is at the end of the line.
        let text = format!("{good}{{:process 0, :type :ok, :f :get, :key \"a\", :value \"v\"\n");
        assert_eq!(
            error_of(&text),
            (2, 54, "expected `}` to close the map".to_string())
        );
        // Unknown :type value, column of the value.
        let text = "{:process 0, :type :done, :f :get, :key \"a\"}";
        let (line, col, message) = error_of(text);
        assert_eq!((line, col), (1, 20));
        assert!(message.starts_with("expected :invoke, :ok, :fail or :info"));
        // A bare word where a value should be.
        let text = "{:process zero, :type :invoke, :f :read}";
        let (line, col, message) = error_of(text);
        assert_eq!((line, col), (1, 11));
        assert!(message.contains("found `zero`"), "{message}");
        // Missing :f.
        assert_eq!(
            error_of("  {:process 0, :type :invoke}"),
            (1, 3, "expected a :f entry in the map".to_string())
        );
        // Unterminated string: points at its opening quote.
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a, :value 1}").0,
            1
        );
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a, :value 1}").1,
            43
        );
        // Put needs a string value.
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a\", :value 1}"),
            (1, 55, "expected a string, found the integer 1".to_string())
        );
        // Trailing junk.
        assert_eq!(error_of("{:process 0, :type :invoke, :f :read} x").1, 39);
    }

    #[test]
    fn times_are_all_or_nothing_and_never_go_backwards() {
        let text = "\
{:process 0, :type :invoke, :f :read, :time 10}
{:process 0, :type :ok, :f :read, :value 1, :time 5}
";
        let (line, col, _) = error_of(text);
        assert_eq!((line, col), (2, 51));
        let mixed = "\
{:process 0, :type :invoke, :f :read, :time 10}
{:process 0, :type :ok, :f :read, :value 1}
";
        assert_eq!(error_of(mixed).0, 2);
    }

    #[test]
    fn nemesis_lines_and_extra_keys_are_ignored() {
        let text = "\
{:process :nemesis, :type :info, :f :start, :value nil}
{:index 0, :time 5, :process 0, :type :invoke, :f :read, :value nil, :error \"x\"}
{:index 1, :time 9, :process 0, :type :ok, :f :read, :value 3}
";
        let history = parse_history(text).unwrap();
        assert_eq!(history.operations.len(), 1);
        assert_eq!(history.operations[0].call, 5);
        assert_eq!(history.operations[0].ret, Some(9));
    }

    fn op(
        client: u64,
        input: Input,
        output: Option<Output>,
        call: u64,
        ret: Option<u64>,
    ) -> JepsenOperation {
        Operation {
            client,
            input,
            output,
            call,
            ret,
        }
    }

    #[test]
    fn written_histories_read_back_to_the_same_operations() {
        let key = || Some("k\"1".into());
        let history = vec![
            op(
                1,
                Input::Write {
                    key: key(),
                    value: Value::str("a b"),
                },
                Some(Output::Done),
                0,
                Some(10),
            ),
            op(
                2,
                Input::Read { key: key() },
                Some(Output::Value(Value::Nil)),
                2,
                Some(10),
            ),
            op(
                3,
                Input::Cas {
                    key: None,
                    expected: Value::Int(1),
                    new: Value::Int(-2),
                },
                Some(Output::Cas(false)),
                3,
                Some(3),
            ),
            op(
                3,
                Input::Cas {
                    key: None,
                    expected: Value::Nil,
                    new: Value::Int(2),
                },
                Some(Output::Cas(true)),
                3,
                Some(4),
            ),
            op(
                4,
                Input::Write {
                    key: None,
                    value: Value::Int(7),
                },
                None,
                5,
                None,
            ),
            op(4, Input::Read { key: None }, None, 11, Some(12)),
            op(
                5,
                Input::Get { key: "g".into() },
                Some(Output::Value(Value::str("x\\y"))),
                12,
                Some(20),
            ),
            op(
                6,
                Input::Put {
                    key: "g".into(),
                    value: "x\\y".into(),
                },
                Some(Output::Done),
                13,
                Some(14),
            ),
            op(
                7,
                Input::Append {
                    key: "g".into(),
                    value: "z".into(),
                },
                None,
                15,
                None,
            ),
        ];
        let text = edn_string(&history);
        let back = parse_history(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(back.operations, history, "\n{text}");
        // And writing what was read gives the same text.
        assert_eq!(edn_string(&back.operations), text);
    }

    #[test]
    fn corpus_kv_file_round_trips() {
        let text = "\
{:process 0, :type :invoke, :f :put, :key \"1\", :value \"x 0 0 y\"}
{:process 1, :type :invoke, :f :get, :key \"1\", :value nil}
{:process 0, :type :ok, :f :put, :key \"1\", :value \"x 0 0 y\"}
{:process 1, :type :ok, :f :get, :key \"1\", :value \"x 0 0 y\"}
";
        let history = parse_history(text).unwrap();
        let written = edn_string(&history.operations);
        assert_eq!(
            parse_history(&written).unwrap().operations,
            history.operations
        );
    }
}
