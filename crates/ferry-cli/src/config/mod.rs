//! Configuration for every command: `ferry.toml`, `FERRY_*` variables and flags.
//!
//! A service is usually run with the same settings every time (its backend, its
//! worker's concurrency, its server's address), and writing them as flags in every unit
//! file and compose service is how they drift apart. So every option of every command
//! can also come from the environment and from one optional file, in this order of
//! precedence: flag, then `FERRY_*` variable, then `ferry.toml`, then the built-in
//! default.
//!
//! - [`file`] finds and reads the file (`--config`, `FERRY_CONFIG`, `./ferry.toml`);
//! - [`keys`] names an option in the file and the environment;
//! - [`layer`] makes the file clap's defaults and checks every key;
//! - [`sections`] lists what the file holds besides options (structured sections);
//! - [`show`] and [`command`] are `ferry config show|check`; [`mask`] hides secrets.
//!
//! Commands that need more than flags (alert rules, several API tokens) read their
//! structured section with [`Config::section`] or [`Config::section_as`].

pub mod command;
pub mod file;
pub mod keys;
pub mod layer;
pub mod mask;
pub mod sections;
pub mod show;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use ferry::{Error, Result};

use crate::args::Cli;
use crate::exit;

pub use command::ConfigCommand;

/// The resolved configuration of one run: the file (if any), every setting the layer
/// saw, and what the command line said.
#[derive(Debug)]
pub struct Config {
    file: Option<file::File>,
    settings: Vec<layer::Setting>,
    matches: clap::ArgMatches,
}

/// Why parsing stopped: a clap error (usage, help, version) or a config error.
#[derive(Debug)]
pub enum ParseError {
    /// The command line (or an environment value) is wrong, or help was asked for.
    Clap(clap::Error),
    /// The config file is missing, unreadable or wrong.
    Config(Error),
}

/// Parses the process's command line over its environment and config file; on failure
/// reports it (one line on stderr, or the help text) and returns the exit status.
pub fn parse_or_report() -> std::result::Result<(Cli, Config), ExitCode> {
    parse_from(std::env::args_os().collect()).map_err(|e| match e {
        ParseError::Clap(e) => exit::report_clap(&e),
        ParseError::Config(e) => exit::report(&e),
    })
}

/// Parses `argv` (program name first) over the environment and the config file.
pub fn parse_from(argv: Vec<OsString>) -> std::result::Result<(Cli, Config), ParseError> {
    let file = file::load(&argv).map_err(ParseError::Config)?;
    let file_name = file
        .as_ref()
        .map_or_else(|| file::DEFAULT_NAME.to_string(), file::File::display);
    let layered = layer::layer(Cli::command(), &file_name, file.as_ref().map(|f| &f.table))
        .map_err(ParseError::Config)?;
    let matches = layered
        .command
        .try_get_matches_from(argv)
        .map_err(ParseError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ParseError::Clap)?;
    check_location(&cli, file.as_ref()).map_err(ParseError::Config)?;
    let config = Config {
        file,
        settings: layered.settings,
        matches,
    };
    Ok((cli, config))
}

/// The file was located before clap parsed the command line; make sure clap read the
/// same `--config` (it would not if, say, `--config` were the value of another option).
fn check_location(cli: &Cli, found: Option<&file::File>) -> Result<()> {
    let named = found.filter(|f| f.chosen != file::Chosen::Default);
    match (&cli.config, named) {
        (None, None) => Ok(()),
        (Some(parsed), Some(f)) if *parsed == f.path => Ok(()),
        _ => Err(Error::invalid_input(
            "cannot tell which config file to use: write --config=PATH before the command",
        )),
    }
}

impl Config {
    /// The config file in use, if any.
    #[allow(
        dead_code,
        reason = "API for commands that read structured sections (serve)"
    )]
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// The raw value of the file's structured section at the dotted `path` (like
    /// `serve.alerts` or `serve.tokens`; see [`sections::STRUCTURED`]), or `None` when
    /// the file does not have it. Key parts may be written with `_` or `-`.
    pub fn section(&self, path: &str) -> Option<&toml::Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let table = &self.file.as_ref()?.table;
        let mut value = lookup(table, first)?;
        for part in parts {
            value = lookup(value.as_table()?, part)?;
        }
        Some(value)
    }

    /// The structured section at `path` decoded into `T` (a `serde::Deserialize`
    /// type), or `None` when the file does not have it. A section that does not decode
    /// is an input error naming the file and the section.
    #[allow(
        dead_code,
        reason = "API for commands that read structured sections (serve)"
    )]
    pub fn section_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let Some(value) = self.section(path) else {
            return Ok(None);
        };
        value.clone().try_into::<T>().map(Some).map_err(|e| {
            let file = self
                .file
                .as_ref()
                .map_or_else(String::new, file::File::display);
            Error::invalid_input(format!("{file}: [{path}]: {}", e.message().trim())).with_source(e)
        })
    }
}

/// The entry of `table` named `key`, in either `-` or `_` spelling.
fn lookup<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let wanted = keys::normalize(key);
    table
        .iter()
        .find(|(k, _)| keys::normalize(k) == wanted)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let table = file::parse(Path::new("ferry.toml"), text).expect("valid TOML");
        let layered = layer::layer(Cli::command(), "ferry.toml", Some(&table)).expect("valid");
        let matches = layered
            .command
            .try_get_matches_from(["ferry", "stats"])
            .expect("parses");
        Config {
            file: Some(file::File {
                path: "ferry.toml".into(),
                chosen: file::Chosen::Default,
                table,
            }),
            settings: layered.settings,
            matches,
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Token {
        token: String,
        role: String,
    }

    #[test]
    fn structured_sections_reach_their_command() {
        let c = config(
            "[[serve.tokens]]\ntoken = \"a\"\nrole = \"admin\"\n\
             [[serve.tokens]]\ntoken = \"b\"\nrole = \"read\"\n\
             [serve.alerts]\n[[serve.alerts.rules]]\nname = \"dead\"\n",
        );
        let tokens: Vec<Token> = c
            .section_as("serve.tokens")
            .expect("decodes")
            .expect("there");
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            (tokens[1].token.as_str(), tokens[1].role.as_str()),
            ("b", "read")
        );
        let rules = c
            .section("serve.alerts.rules")
            .and_then(toml::Value::as_array);
        assert_eq!(rules.map(Vec::len), Some(1));
        assert!(c.section("serve.nothing").is_none());
        let bad = c
            .section_as::<Vec<u32>>("serve.tokens")
            .expect_err("wrong type");
        assert!(
            bad.message().starts_with("ferry.toml: [serve.tokens]"),
            "{}",
            bad.message()
        );
    }
}
