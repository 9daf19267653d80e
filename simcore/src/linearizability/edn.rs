//! An EDN reader: every value Jepsen and Knossos print, with the line and column of each map
//! entry so that a history's errors can point into the file.
//!
//! Accepted (the EDN spec, plus what Clojure's printer writes into Jepsen histories):
//!
//! - `nil`, `true`, `false`; integers (`-12`, `+3`, `7N` bigints of any size, Clojure's
//!   `0x1F` and `2r101`), floats (`1.5`, `1e3`, `2.0M`, `##Inf`, `##-Inf`, `##NaN`), ratios
//!   (`1/3`); strings with `\" \\ \n \t \r \b \f \uXXXX` escapes; characters (`\a`,
//!   `\newline`, `\space`, `\tab`, `\return`, `\formfeed`, `\backspace`, `\uXXXX`, `\oNNN`);
//!   keywords (`:f`, `:jepsen.history/op`, `::x`) and symbols (`foo`, `a.b/c`);
//! - lists `( )`, vectors `[ ]`, maps `{ }`, sets `#{ }`, in any nesting;
//! - tagged values `#tag value`: `#inst "..."`, `#uuid "..."`, record literals such as
//!   `#jepsen.history.Op{...}`, `#object[...]`, `#error {...}`; the tag is kept and the value
//!   read as usual (a tagged map that is an operation counts as that map);
//! - `#_` discards the next value; `;` comments to the end of the line; commas are
//!   whitespace; Clojure's `#"regex"` is read as a string.
//!
//! Not accepted: reader macros that only make sense in code (`'x`, `` `x ``, `~x`, `@x`,
//! `^meta`, `#(...)`, `#?(...)`): they are reported with their position.

use std::fmt::{self, Write as _};

use super::load::InputError;

/// One map entry with the position of its value (for messages about it).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: Edn,
    pub(crate) value: Edn,
    pub(crate) line: usize,
    pub(crate) col: usize,
}

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    /// An integer beyond `i64` (its digits, with sign).
    BigInt(String),
    /// A float, big decimal or ratio, as written (only compared, never computed with).
    Number(String),
    Char(char),
    Str(String),
    /// A keyword's name, without the colon.
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
    Map(Vec<Entry>),
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// A short description for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".to_string(),
            Edn::Bool(value) => value.to_string(),
            Edn::Int(number) => format!("the integer {number}"),
            Edn::BigInt(digits) => format!("the integer {digits}N"),
            Edn::Number(text) => format!("the number {text}"),
            Edn::Char(_) => "a character".to_string(),
            Edn::Str(_) => "a string".to_string(),
            Edn::Keyword(name) => format!("the keyword :{name}"),
            Edn::Symbol(name) => format!("the symbol {name}"),
            Edn::List(items) => format!("a list of {} items", items.len()),
            Edn::Vector(items) => format!("a vector of {} items", items.len()),
            Edn::Set(items) => format!("a set of {} items", items.len()),
            Edn::Map(entries) => format!("a map of {} entries", entries.len()),
            Edn::Tagged(tag, _) => format!("a #{tag} value"),
        }
    }

    /// The items of a list, vector or set.
    pub(crate) fn items(&self) -> Option<&[Edn]> {
        match self {
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => Some(items),
            _ => None,
        }
    }

    /// The value without its tags (`#jepsen.history.Op{...}` is the map).
    pub(crate) fn untagged(&self) -> &Edn {
        let mut value = self;
        while let Edn::Tagged(_, inner) = value {
            value = inner;
        }
        value
    }

    /// A name: a keyword's, a symbol's or a string's (`:ok`, `ok` and `"ok"` all say ok).
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            Edn::Keyword(name) | Edn::Symbol(name) | Edn::Str(name) => Some(name),
            _ => None,
        }
    }

    /// The value's canonical EDN text: equal values (in Clojure's `=`, which ignores the
    /// order of a set or map) have equal texts. Lists and vectors print alike, as `=` says.
    pub(crate) fn canonical(&self) -> String {
        let mut text = String::new();
        let _ = self.write_canonical(&mut text);
        text
    }

    fn write_canonical(&self, out: &mut String) -> fmt::Result {
        match self {
            Edn::Nil => out.write_str("nil"),
            Edn::Bool(value) => write!(out, "{value}"),
            Edn::Int(number) => write!(out, "{number}"),
            Edn::BigInt(digits) => write!(out, "{digits}"),
            Edn::Number(text) => out.write_str(text),
            Edn::Char(character) => write!(out, "\\u{:04x}", u32::from(*character)),
            Edn::Str(text) => super::history::write_quoted(out, text),
            Edn::Keyword(name) => write!(out, ":{name}"),
            Edn::Symbol(name) => out.write_str(name),
            Edn::List(items) | Edn::Vector(items) => {
                out.write_char('[')?;
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        out.write_char(' ')?;
                    }
                    item.write_canonical(out)?;
                }
                out.write_char(']')
            }
            Edn::Set(items) => {
                let mut texts: Vec<String> = items.iter().map(Edn::canonical).collect();
                texts.sort();
                texts.dedup();
                write!(out, "#{{{}}}", texts.join(" "))
            }
            Edn::Map(entries) => {
                let mut texts: Vec<String> = entries
                    .iter()
                    .map(|entry| format!("{} {}", entry.key.canonical(), entry.value.canonical()))
                    .collect();
                texts.sort();
                write!(out, "{{{}}}", texts.join(", "))
            }
            Edn::Tagged(tag, value) => {
                write!(out, "#{tag} ")?;
                value.write_canonical(out)
            }
        }
    }
}

/// A position in a text, with positioned errors. Lines and columns are 1-based; columns
/// count characters.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    position: usize,
    line: usize,
    line_start: usize,
}

fn is_delimiter(character: char) -> bool {
    character.is_whitespace()
        || matches!(
            character,
            ',' | '[' | ']' | '{' | '}' | '(' | ')' | '"' | ';' | '\\'
        )
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`, which starts on line `line`.
    pub(crate) fn new(text: &'a str, line: usize) -> Cursor<'a> {
        Cursor {
            text,
            position: 0,
            line,
            line_start: 0,
        }
    }

    /// The 1-based column (in characters) of the current position.
    pub(crate) fn col(&self) -> usize {
        self.text[self.line_start..self.position].chars().count() + 1
    }

    /// The current line.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> InputError {
        InputError::at(self.line, self.col(), message)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.position += character.len_utf8();
        if character == '\n' {
            self.line += 1;
            self.line_start = self.position;
        }
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

    /// Skips whitespace, commas, `;` comments and `#_` discarded values.
    pub(crate) fn skip_blank(&mut self) -> Result<(), InputError> {
        loop {
            self.skip_space(true);
            match self.peek() {
                Some(';') => {
                    while let Some(character) = self.peek() {
                        if character == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('#') if self.peek_second() == Some('_') => {
                    self.bump();
                    self.bump();
                    self.value()?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Consumes `word` or fails with "expected `word`".
    pub(crate) fn expect_word(&mut self, word: &str) -> Result<(), InputError> {
        if self.rest().starts_with(word) {
            for _ in word.chars() {
                self.bump();
            }
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
        let (line, col) = (self.line, self.col());
        self.bump();
        let name = self.token();
        if name.is_empty() {
            return Err(InputError::at(line, col, format!("expected {expected}")));
        }
        Ok(name)
    }

    /// Reads one EDN value (after any blanks); returns it with the line and column it
    /// started at.
    pub(crate) fn value(&mut self) -> Result<(Edn, usize, usize), InputError> {
        self.skip_blank()?;
        let (line, col) = (self.line, self.col());
        let at = |message: String| InputError::at(line, col, message);
        let value = match self.peek() {
            None => return Err(self.error("expected a value, found the end of the input")),
            Some('"') => Edn::Str(self.string()?),
            Some(':') => {
                let name = self.keyword("a keyword")?;
                Edn::Keyword(name.trim_start_matches(':').to_string())
            }
            Some('[') => Edn::Vector(self.sequence('[', ']', "vector")?),
            Some('(') => Edn::List(self.sequence('(', ')', "list")?),
            Some('{') => Edn::Map(self.map()?),
            Some(close @ (']' | ')' | '}')) => {
                return Err(at(format!("expected a value, found `{close}`")))
            }
            Some('\\') => Edn::Char(self.character()?),
            Some('#') => match self.peek_second() {
                Some('{') => {
                    self.bump();
                    Edn::Set(self.sequence('{', '}', "set")?)
                }
                Some('#') => {
                    self.bump();
                    self.bump();
                    let token = self.token();
                    match token {
                        "Inf" | "-Inf" | "NaN" => Edn::Number(format!("##{token}")),
                        _ => {
                            return Err(at(format!(
                                "expected ##Inf, ##-Inf or ##NaN, found ##{token}"
                            )))
                        }
                    }
                }
                Some('"') => {
                    self.bump();
                    Edn::Str(self.string()?)
                }
                Some(next)
                    if next.is_alphabetic()
                        || matches!(
                            next,
                            '_' | '.'
                                | '*'
                                | '+'
                                | '!'
                                | '-'
                                | '?'
                                | '$'
                                | '%'
                                | '&'
                                | '='
                                | '<'
                                | '>'
                        ) =>
                {
                    self.bump();
                    let tag = self.token().to_string();
                    let (inner, _, _) = self.value()?;
                    Edn::Tagged(tag, Box::new(inner))
                }
                _ => {
                    return Err(at(
                        "expected a tagged value (#tag value), a set #{...} or #_".to_string(),
                    ))
                }
            },
            Some(quote @ ('\'' | '`' | '~' | '@' | '^')) => {
                return Err(at(format!(
                    "`{quote}` is a Clojure reader macro, not EDN; expected a value"
                )))
            }
            Some(_) => {
                let token = self.token();
                if token.is_empty() {
                    return Err(at("expected a value".to_string()));
                }
                atom(token).map_err(at)?
            }
        };
        Ok((value, line, col))
    }

    fn sequence(&mut self, open: char, close: char, what: &str) -> Result<Vec<Edn>, InputError> {
        let (line, col) = (self.line, self.col());
        debug_assert_eq!(self.peek(), Some(open));
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            match self.peek() {
                Some(character) if character == close => {
                    self.bump();
                    return Ok(items);
                }
                None => {
                    return Err(InputError::at(
                        line,
                        col,
                        format!("expected `{close}` to close the {what} opened here"),
                    ))
                }
                Some(_) => items.push(self.value()?.0),
            }
        }
    }

    fn map(&mut self) -> Result<Vec<Entry>, InputError> {
        let (line, col) = (self.line, self.col());
        self.bump();
        let mut entries = Vec::new();
        loop {
            self.skip_blank()?;
            match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(entries);
                }
                None => {
                    return Err(InputError::at(
                        line,
                        col,
                        "expected `}` to close the map opened here",
                    ))
                }
                Some(_) => {
                    let (key, key_line, key_col) = self.value()?;
                    self.skip_blank()?;
                    if matches!(self.peek(), Some('}') | None) {
                        return Err(InputError::at(
                            key_line,
                            key_col,
                            format!("expected a value after the key {}", key.canonical()),
                        ));
                    }
                    let (value, value_line, value_col) = self.value()?;
                    if entries.iter().any(|entry: &Entry| entry.key == key) {
                        return Err(InputError::at(
                            key_line,
                            key_col,
                            format!("duplicate key {}", key.canonical()),
                        ));
                    }
                    entries.push(Entry {
                        key,
                        value,
                        line: value_line,
                        col: value_col,
                    });
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, InputError> {
        let (line, col) = (self.line, self.col());
        self.bump();
        let mut text = String::new();
        loop {
            let (escape_line, escape_col) = (self.line, self.col());
            let escape_error = || {
                InputError::at(
                    escape_line,
                    escape_col,
                    "expected an escape: \\\", \\\\, \\n, \\t, \\r, \\b, \\f or \\uXXXX",
                )
            };
            match self.bump() {
                None => {
                    return Err(InputError::at(
                        line,
                        col,
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
                    Some('b') => text.push('\u{8}'),
                    Some('f') => text.push('\u{c}'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let character = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(escape_error)?;
                        text.push(character);
                    }
                    _ => return Err(escape_error()),
                },
                Some(character) => text.push(character),
            }
        }
    }

    fn character(&mut self) -> Result<char, InputError> {
        let (line, col) = (self.line, self.col());
        self.bump();
        // The first character is taken even if it is a delimiter (`\(`, `\ `... no: `\space`).
        let first = self
            .bump()
            .ok_or_else(|| InputError::at(line, col, "expected a character after `\\`"))?;
        let start = self.position - first.len_utf8();
        while let Some(character) = self.peek() {
            if is_delimiter(character) {
                break;
            }
            self.bump();
        }
        let name = &self.text[start..self.position];
        let character = match name {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            "formfeed" => '\u{c}',
            "backspace" => '\u{8}',
            _ if name.chars().count() == 1 => first,
            _ if name.starts_with('u') && name.len() == 5 => u32::from_str_radix(&name[1..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    InputError::at(line, col, format!("expected a character, found \\{name}"))
                })?,
            _ if name.starts_with('o') => u32::from_str_radix(&name[1..], 8)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    InputError::at(line, col, format!("expected a character, found \\{name}"))
                })?,
            _ => {
                return Err(InputError::at(
                    line,
                    col,
                    format!("expected a character, found \\{name}"),
                ))
            }
        };
        Ok(character)
    }
}

/// A bare token: `nil`, `true`, `false`, a number or a symbol.
fn atom(token: &str) -> Result<Edn, String> {
    match token {
        "nil" => return Ok(Edn::Nil),
        "true" => return Ok(Edn::Bool(true)),
        "false" => return Ok(Edn::Bool(false)),
        _ => {}
    }
    let unsigned = token.strip_prefix(['-', '+']).unwrap_or(token);
    if !unsigned.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(Edn::Symbol(token.to_string()));
    }
    let negative = token.starts_with('-');
    let bad = || format!("expected a number, found `{token}`");
    let integer = |digits: &str, radix: u32| -> Result<Edn, String> {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        let signed = if negative {
            format!("-{digits}")
        } else {
            digits.to_string()
        };
        Ok(match i64::from_str_radix(&signed, radix) {
            Ok(number) => Edn::Int(number),
            Err(_) if radix == 10 => Edn::BigInt(signed.trim_start_matches('0').to_string()),
            Err(_) => Edn::BigInt(format!("{radix}r{signed}")),
        })
    };
    if let Some(digits) = unsigned.strip_suffix('N') {
        return integer(digits, 10);
    }
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        return integer(hex, 16);
    }
    if let Some((radix, digits)) = unsigned.split_once(['r', 'R']) {
        if let Ok(radix @ 2..=36) = radix.parse::<u32>() {
            return integer(digits, radix);
        }
        return Err(bad());
    }
    if unsigned.chars().all(|c| c.is_ascii_digit()) {
        return integer(unsigned, 10);
    }
    if let Some((numerator, denominator)) = unsigned.split_once('/') {
        let digits = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
        if digits(numerator) && digits(denominator) {
            return Ok(Edn::Number(token.to_string()));
        }
        return Err(bad());
    }
    let float = unsigned.strip_suffix('M').unwrap_or(unsigned);
    if float.parse::<f64>().is_ok()
        && !float.contains(|c: char| c.is_alphabetic() && c != 'e' && c != 'E')
    {
        return Ok(Edn::Number(token.to_string()));
    }
    Err(bad())
}

/// Reads every top-level value of `text`, with the line and column each starts at.
pub(crate) fn read_all(text: &str) -> Result<Vec<(Edn, usize, usize)>, InputError> {
    let mut cursor = Cursor::new(text, 1);
    let mut values = Vec::new();
    loop {
        cursor.skip_blank()?;
        if cursor.at_end() {
            return Ok(values);
        }
        values.push(cursor.value()?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Edn {
        let values = read_all(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        assert_eq!(values.len(), 1, "{text}");
        values
            .into_iter()
            .next()
            .map(|(value, _, _)| value)
            .unwrap_or(Edn::Nil)
    }

    fn error(text: &str) -> (usize, usize, String) {
        let error = read_all(text).unwrap_err();
        (error.line, error.col, error.message)
    }

    #[test]
    fn scalars() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("true"), Edn::Bool(true));
        assert_eq!(one("-12"), Edn::Int(-12));
        assert_eq!(one("+3"), Edn::Int(3));
        assert_eq!(one("7N"), Edn::Int(7));
        assert_eq!(
            one("123456789012345678901234567890N"),
            Edn::BigInt("123456789012345678901234567890".into())
        );
        assert_eq!(one("0x1F"), Edn::Int(31));
        assert_eq!(one("2r101"), Edn::Int(5));
        assert_eq!(one("1.5"), Edn::Number("1.5".into()));
        assert_eq!(one("-1e3"), Edn::Number("-1e3".into()));
        assert_eq!(one("2.0M"), Edn::Number("2.0M".into()));
        assert_eq!(one("1/3"), Edn::Number("1/3".into()));
        assert_eq!(one("##Inf"), Edn::Number("##Inf".into()));
        assert_eq!(one("\\a"), Edn::Char('a'));
        assert_eq!(one("\\newline"), Edn::Char('\n'));
        assert_eq!(one("\\u0041"), Edn::Char('A'));
        assert_eq!(
            one(":jepsen.history/op"),
            Edn::Keyword("jepsen.history/op".into())
        );
        assert_eq!(one("foo.bar/baz"), Edn::Symbol("foo.bar/baz".into()));
        assert_eq!(one("\"a\\\"b\\u00e9\\n\""), Edn::Str("a\"b\u{e9}\n".into()));
        assert_eq!(one("#\"re.*\""), Edn::Str("re.*".into()));
    }

    #[test]
    fn collections_tags_comments_and_discards() {
        let value = one("; a comment\n[1 (2 3) #{:a} {:k [nil]} #_ ignored #inst \"2020-01-01\"]");
        let Edn::Vector(items) = value else {
            panic!("expected a vector")
        };
        assert_eq!(items.len(), 5);
        assert_eq!(items[1], Edn::List(vec![Edn::Int(2), Edn::Int(3)]));
        assert_eq!(items[2], Edn::Set(vec![Edn::Keyword("a".into())]));
        assert_eq!(
            items[4],
            Edn::Tagged("inst".into(), Box::new(Edn::Str("2020-01-01".into())))
        );
        let record = one("#jepsen.history.Op{:index 0, :type :invoke}");
        let Edn::Tagged(tag, inner) = &record else {
            panic!("expected a tagged value")
        };
        assert_eq!(tag, "jepsen.history.Op");
        assert!(matches!(inner.untagged(), Edn::Map(entries) if entries.len() == 2));
        assert_eq!(
            one("#object[java.lang.Exception 0x1f \"boom\"]").describe(),
            "a #object value"
        );
    }

    #[test]
    fn canonical_text_ignores_set_and_map_order() {
        assert_eq!(one("#{3 1 2}").canonical(), one("#{2 3 1}").canonical());
        assert_eq!(
            one("{:a 1 :b 2}").canonical(),
            one("{:b 2, :a 1}").canonical()
        );
        assert_eq!(one("(1 2)").canonical(), one("[1 2]").canonical());
        assert_ne!(one("[1 2]").canonical(), one("[2 1]").canonical());
    }

    #[test]
    fn errors_have_line_and_column() {
        assert_eq!(
            error("[1 2\n 3"),
            (1, 1, "expected `]` to close the vector opened here".into())
        );
        assert_eq!(
            error("{:a 1\n :b}"),
            (2, 2, "expected a value after the key :b".into())
        );
        assert_eq!(
            error("\n  {:a 1, :a 2}"),
            (2, 10, "duplicate key :a".into())
        );
        assert_eq!(error("[1 ]]").0, 1);
        assert_eq!(error("[1 ]]").1, 5);
        assert_eq!(error("  12x").1, 3);
        assert!(error("'x").2.contains("reader macro"));
        assert_eq!(error("\"abc").1, 1);
    }
}
