//! `ferry config show|check`: what the layered configuration resolved to.
//!
//! With three places a setting can come from, "why is it using that value?" needs an
//! answer that does not involve reading the source: `show` prints every setting of
//! every command with its value and where it came from, secrets masked.

use clap::Subcommand;
use ferry::Result;

use super::{Config, show};
use crate::output::outln;

/// `ferry config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting of every command: value (secrets masked), source
    /// (flag, env, file or default) and environment variable.
    #[command(
        after_help = "Precedence: flag > FERRY_* variable > ferry.toml > built-in default.\n\
        The file is --config PATH, else FERRY_CONFIG, else ./ferry.toml if it exists."
    )]
    Show {
        /// Print JSON: {"file","settings":[{"key","value","source","env"}],"sections"}.
        #[arg(long)]
        json: bool,
    },
    /// Check the config file (unknown keys, wrong types, bad values) and say which file
    /// is used; exit 2 if it is wrong.
    Check,
}

/// Runs `ferry config show|check`.
pub fn run(command: ConfigCommand, config: &Config) -> Result<()> {
    match command {
        ConfigCommand::Show { json: true } => show::print_json(config),
        ConfigCommand::Show { json: false } => show::print_text(config),
        ConfigCommand::Check => match &config.file {
            // Loading already checked every key: reaching here means the file is valid.
            Some(f) => {
                let options = config.settings.iter().filter(|s| s.file.is_some()).count();
                let sections = show::sections(config).len();
                outln!(
                    "{}: ok ({options} option{}, {sections} section{})",
                    f.display(),
                    plural(options),
                    plural(sections)
                )
            }
            None => outln!(
                "no config file: none named with --config or FERRY_CONFIG, and no ./{} here",
                super::file::DEFAULT_NAME
            ),
        },
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
