//! Why a realm file was refused: every problem found, each with its JSON path and a hint
//! on how to fix it, so that one run of the importer shows everything to correct.

use std::fmt;

/// One thing wrong with a realm file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path in Keycloak style (`clients[1].secret`); empty for the file as a whole.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A realm file that cannot be imported. `Display` prints one problem per line, each
/// prefixed with the file name, ready for a terminal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.source_name, .problems))]
pub struct ImportError {
    /// The file (or other source) the problems were found in, as given to `parse_realm`.
    pub source_name: String,
    /// At least one when made by this module.
    pub problems: Vec<Problem>,
}

impl ImportError {
    pub fn new(source_name: &str, problems: Vec<Problem>) -> Self {
        ImportError {
            source_name: source_name.to_owned(),
            problems,
        }
    }

    pub(crate) fn single(source_name: &str, problem: Problem) -> Self {
        Self::new(source_name, vec![problem])
    }
}

fn render(source_name: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{source_name}: {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Ok` when nothing was found, else all of it.
pub(crate) fn collect(source_name: &str, problems: Vec<Problem>) -> Result<(), ImportError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ImportError::new(source_name, problems))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_problem() {
        let e = ImportError::new(
            "realm.json",
            vec![
                Problem::new("realm", "required"),
                Problem::new("", "malformed JSON"),
            ],
        );
        assert_eq!(
            e.to_string(),
            "realm.json: realm: required\nrealm.json: malformed JSON"
        );
    }
}
