//! Finding and reading `ferry.toml`.
//!
//! The file is optional: `--config PATH` (or `FERRY_CONFIG`) names one, which must
//! then exist; otherwise `./ferry.toml` is read when present, so a service directory
//! with its config file just works, and a machine without one behaves as before.
//!
//! The location is needed before clap parses the command line (the file supplies
//! clap's defaults), so `--config` is found here with a small scan of the arguments
//! that follows clap's spelling (`--config PATH`, `--config=PATH`, not after `--`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use ferry::{Error, ErrorKind, Result};

/// The environment variable that names the config file.
pub const ENV: &str = "FERRY_CONFIG";
/// The file read from the working directory when none is named.
pub const DEFAULT_NAME: &str = "ferry.toml";

/// How the file was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// `--config PATH`.
    Flag,
    /// `FERRY_CONFIG`.
    Env,
    /// `./ferry.toml`, found in the working directory.
    Default,
}

impl Chosen {
    /// The word `config show` prints as the source of the `config` setting.
    pub fn source(self) -> &'static str {
        match self {
            Chosen::Flag => "flag",
            Chosen::Env => "env",
            Chosen::Default => "default",
        }
    }
}

/// A config file that was found and parsed.
#[derive(Debug, Clone)]
pub struct File {
    /// The path as given (or `ferry.toml`), for messages.
    pub path: PathBuf,
    /// How it was chosen.
    pub chosen: Chosen,
    /// Its contents.
    pub table: toml::Table,
}

impl File {
    /// The path as it appears at the start of error messages.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// Finds the config file for the command line `argv` (program name first) and parses
/// it; `None` when none is named and `./ferry.toml` does not exist.
pub fn load(argv: &[OsString]) -> Result<Option<File>> {
    let Some((path, chosen)) = locate(argv) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && chosen != Chosen::Default => {
            let how = match chosen {
                Chosen::Env => format!(" (from {ENV})"),
                _ => String::new(),
            };
            return Err(Error::invalid_input(format!(
                "config file {}{how} does not exist",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("cannot read config file {}: {e}", path.display()),
            )
            .with_source(e));
        }
    };
    let table = parse(&path, &text)?;
    Ok(Some(File {
        path,
        chosen,
        table,
    }))
}

/// Parses TOML text; a syntax error names the file, line and column (the parser's own
/// Display is a multi-line excerpt that would not fit the CLI's one-line errors).
pub fn parse(path: &Path, text: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| {
        let position = e
            .span()
            .map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        let message = e.message().trim().to_string();
        Error::invalid_input(format!("{}: {position}{message}", path.display())).with_source(e)
    })
}

/// Where the config file is, and how it was chosen.
fn locate(argv: &[OsString]) -> Option<(PathBuf, Chosen)> {
    if let Some(path) = flag(argv) {
        return Some((PathBuf::from(path), Chosen::Flag));
    }
    if let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), Chosen::Env));
    }
    let default = PathBuf::from(DEFAULT_NAME);
    default.is_file().then_some((default, Chosen::Default))
}

/// The value of the last `--config` in `argv` (clap keeps the last one too).
pub fn flag(argv: &[OsString]) -> Option<OsString> {
    let mut found = None;
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == OsStr::new("--") {
            break;
        }
        if arg == OsStr::new("--config") {
            found = args.next().cloned();
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            found = Some(OsString::from(value));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("ferry")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn config_flag_is_found_anywhere_before_double_dash() {
        assert_eq!(
            flag(&argv(&["--config", "a.toml", "stats"])),
            Some("a.toml".into())
        );
        assert_eq!(
            flag(&argv(&["stats", "--config=b.toml"])),
            Some("b.toml".into())
        );
        assert_eq!(
            flag(&argv(&["--config", "a", "stats", "--config", "c"])),
            Some("c".into())
        );
        assert_eq!(flag(&argv(&["send", "q", "--", "--config", "x"])), None);
        assert_eq!(flag(&argv(&["stats"])), None);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = parse(Path::new("ferry.toml"), "backend = \"x\"\n[serve\n").expect_err("bad");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.message().starts_with("ferry.toml: line 2"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains('\n'), "{}", err.message());
    }
}
