//! Diagnostics for rule files: every problem is reported as `path:line:col: message`, and loading
//! collects all of them before failing so an operator fixes a file in one pass.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters (so Thai and Vietnamese text point at the right place).
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Where a value is written in a rule file, kept for warnings found after loading (a title that
/// fits no results page is known only once pages are rendered).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Position {
    pub fn diagnostic(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

/// All the problems found while loading a rules directory.
#[derive(Debug, thiserror::Error)]
pub struct RulesError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The text of a rule file, kept while validating so byte spans become line and column.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        Self {
            path: path.into(),
            text,
        }
    }

    pub fn position(&self, span: Range<usize>) -> Position {
        let (line, col) = line_col(&self.text, span.start);
        Position {
            path: self.path.clone(),
            line,
            col,
        }
    }

    pub fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.position(span).diagnostic(message)
    }
}

/// A diagnostic about a file as a whole (missing, unreadable), pointing at its start.
pub fn file_diagnostic(path: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        path: path.to_path_buf(),
        line: 1,
        col: 1,
        message: message.into(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nชื่อ = \"x\"\n";
        let at = text.find('=').unwrap();
        assert_eq!(line_col(text, at), (1, 3));
        let second = text.rfind('=').unwrap();
        assert_eq!(line_col(text, second), (2, 6));
        assert_eq!(line_col(text, text.len() + 10), (3, 1));
    }
}
