//! Errors in scenario files, in the form compilers use:
//! `FILE:LINE:COLUMN: error: what is wrong`, then `  hint: what to do`.

use std::fmt;

/// Something wrong with the user's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The file (as given on the command line).
    pub file: String,
    /// 1-based line and column, when the error has a place.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl InputError {
    /// An error at a place in `file`.
    pub fn at(
        file: &str,
        at: (usize, usize),
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        InputError {
            file: file.to_string(),
            at: Some(at),
            message: message.into(),
            hint: hint.into(),
        }
    }
    /// An error about the file as a whole.
    pub fn whole(file: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        InputError {
            file: file.to_string(),
            at: None,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: error: {}", self.file, self.message)?,
            None => write!(f, "{}: error: {}", self.file, self.message)?,
        }
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}
