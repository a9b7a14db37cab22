//! Layering the config file and the environment under the command line.
//!
//! Rather than a second settings model next to clap's, the file becomes clap's own
//! defaults: every option with a long name, in every (sub)command, gets
//!
//! - its environment variable (see [`super::keys::env_name`]) unless it declares one;
//! - its value from the file, if any, as its default value.
//!
//! clap then applies the precedence by itself: flag > environment > default (from the
//! file) > built-in default, and reports bad environment values as it always does. A
//! new command or option gets file and environment support without any code here.
//!
//! File values are checked here, before clap sees them, so that an error names the
//! key and the file (`ferry.toml: unknown key 'serve.bnd' (serve takes: bind, ...)`):
//! unknown keys, wrong TOML types, and values the option's own parser rejects.
//! Positional arguments (queue names, payloads, ids) are operands, not settings, and
//! get neither a file key nor a variable.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::{Arg, ArgAction};
use ferry::{Error, Result};

use super::{keys, mask, sections};

/// One option of one command, as the layer saw it: what `config show` reports.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The command path: `["queue", "create"]`; empty for top-level options.
    pub command: Vec<String>,
    /// clap's id of the argument (to look it up in `ArgMatches`).
    pub id: String,
    /// Dotted file key: `queue.create.max-attempts`.
    pub key: String,
    /// The long option name: `max-attempts`.
    pub long: String,
    /// Its environment variable, if it has one.
    pub env: Option<String>,
    /// The values the file gave it.
    pub file: Option<Vec<String>>,
    /// The built-in default values (empty: none; a switch defaults to `false`).
    pub builtin: Vec<String>,
    /// Whether it takes several values (`--header`, repeated).
    pub multiple: bool,
    /// Whether its value is a secret (masked wherever it is printed).
    pub secret: bool,
}

/// The command with the file and environment layered in, and what was layered.
#[derive(Debug)]
pub struct Layered {
    /// The command to parse the command line with.
    pub command: clap::Command,
    /// Every configurable option of every command, in command-tree order.
    pub settings: Vec<Setting>,
}

/// Layers `table` (the parsed file, named `file_name` in errors; `None` without a
/// file) and the environment under `command`.
pub fn layer(
    command: clap::Command,
    file_name: &str,
    table: Option<&toml::Table>,
) -> Result<Layered> {
    let mut walker = Walker {
        file_name,
        settings: Vec::new(),
    };
    let command = walker.command(command, &mut Vec::new(), table)?;
    Ok(Layered {
        command,
        settings: walker.settings,
    })
}

struct Walker<'a> {
    file_name: &'a str,
    settings: Vec<Setting>,
}

/// A file entry: the key as written, and its value.
type Entry<'t> = (&'t str, &'t toml::Value);

impl Walker<'_> {
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::invalid_input(format!("{}: {message}", self.file_name))
    }

    /// Layers one command and, recursively, its subcommands.
    fn command(
        &mut self,
        mut cmd: clap::Command,
        path: &mut Vec<String>,
        table: Option<&toml::Table>,
    ) -> Result<clap::Command> {
        let mut entries = self.entries(path, table)?;
        let mut takes = Vec::new();

        let options: Vec<Arg> = cmd
            .get_arguments()
            .filter(|a| !a.is_positional() && a.get_long().is_some())
            .cloned()
            .collect();
        for arg in options {
            let Some(long) = arg.get_long().map(str::to_string) else {
                continue;
            };
            let key = keys::dotted(path, &long);
            let entry = entries.remove(&long);
            if sections::is_per_invocation(&key) {
                if let Some((written, _)) = entry {
                    return Err(self.error(format!(
                        "'{}' cannot be set in a config file: it says what one run acts \
                         on, so give it on the command line",
                        keys::dotted(path, written)
                    )));
                }
                continue;
            }
            takes.push(long.clone());
            let file = match entry {
                Some((written, value)) => {
                    Some(self.file_values(&cmd, &arg, &keys::dotted(path, written), value)?)
                }
                None => None,
            };
            let setting = Setting {
                command: path.clone(),
                id: arg.get_id().to_string(),
                key,
                env: Some(
                    arg.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| keys::env_name(path, &long)),
                ),
                file,
                builtin: builtin(&arg),
                multiple: matches!(arg.get_action(), ArgAction::Append),
                secret: mask::is_secret_name(&long),
                long,
            };
            cmd = cmd.mut_arg(arg.get_id(), |a| apply(a, &setting));
            self.settings.push(setting);
        }

        for sub in cmd.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            takes.push(name.clone());
            let sub_table = match entries.remove(&name) {
                Some((_, toml::Value::Table(t))) => Some(t),
                Some((written, other)) => {
                    let key = keys::dotted(path, written);
                    return Err(self.error(format!(
                        "'{key}' must be a table ([{key}]) of `ferry {}` options, not {}",
                        key.replace('.', " "),
                        sections::article(other.type_str())
                    )));
                }
                None => None,
            };
            path.push(name);
            let layered = self.command(std::mem::take(sub), path, sub_table)?;
            *sub = layered;
            path.pop();
        }

        let here = path.join(".");
        takes.extend(sections::children(&here).map(str::to_string));
        for (name, (written, value)) in entries {
            let dotted = keys::dotted(path, &name);
            if let Some(section) = sections::structured(&dotted) {
                sections::check_shape(section, value).map_err(|m| self.error(m))?;
                continue;
            }
            if sections::holds_structured(&dotted) {
                // A table of structured sections whose command this build lacks.
                if let toml::Value::Table(t) = value {
                    path.push(name.clone());
                    self.only_sections(path, t)?;
                    path.pop();
                    continue;
                }
            }
            return Err(self.unknown(path, written, &takes));
        }
        Ok(cmd)
    }

    /// Checks a table that may hold only structured sections.
    fn only_sections(&self, path: &[String], table: &toml::Table) -> Result<()> {
        let takes: Vec<String> = sections::children(&path.join("."))
            .map(str::to_string)
            .collect();
        for (written, value) in table {
            let dotted = keys::dotted(path, &keys::normalize(written));
            match sections::structured(&dotted) {
                Some(section) => {
                    sections::check_shape(section, value).map_err(|m| self.error(m))?;
                }
                None => return Err(self.unknown(path, written, &takes)),
            }
        }
        Ok(())
    }

    fn unknown(&self, path: &[String], written: &str, takes: &[String]) -> Error {
        let takes = if takes.is_empty() {
            "nothing".to_string()
        } else {
            takes.join(", ")
        };
        self.error(format!(
            "unknown key '{}' ({} takes: {takes})",
            keys::dotted(path, written),
            keys::command_name(path)
        ))
    }

    /// The table's entries by normalized key; a key written twice (`max-attempts` and
    /// `max_attempts`) is an error.
    fn entries<'t>(
        &self,
        path: &[String],
        table: Option<&'t toml::Table>,
    ) -> Result<BTreeMap<String, Entry<'t>>> {
        let mut entries: BTreeMap<String, Entry<'t>> = BTreeMap::new();
        for (written, value) in table.into_iter().flatten() {
            let key = keys::normalize(written);
            if let Some((first, _)) = entries.insert(key, (written.as_str(), value)) {
                return Err(self.error(format!(
                    "'{}' and '{}' are the same setting; keep one",
                    keys::dotted(path, first),
                    keys::dotted(path, written)
                )));
            }
        }
        Ok(entries)
    }

    /// The option's values from a file value of the right TOML type, each checked with
    /// the option's own parser.
    fn file_values(
        &self,
        cmd: &clap::Command,
        arg: &Arg,
        key: &str,
        value: &toml::Value,
    ) -> Result<Vec<String>> {
        let found = || sections::article(value.type_str());
        let values = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                toml::Value::Boolean(b) => vec![b.to_string()],
                _ => {
                    return Err(self.error(format!(
                        "'{key}' is a switch: write true or false, not {}",
                        found()
                    )));
                }
            },
            ArgAction::Set => match scalar(value) {
                Some(v) => vec![v],
                None => {
                    return Err(self.error(format!(
                        "'{key}' takes one value (a string or a number), not {}",
                        found()
                    )));
                }
            },
            ArgAction::Append => {
                let items = match value {
                    toml::Value::Array(items) => items.iter().map(scalar).collect(),
                    other => scalar(other).map(|v| vec![v]),
                };
                match items {
                    Some(items) => items,
                    None => {
                        return Err(self.error(format!(
                            "'{key}' takes a list of strings, like [\"a\", \"b\"], not {}",
                            found()
                        )));
                    }
                }
            }
            _ => {
                return Err(self.error(format!("'{key}' cannot be set in a config file")));
            }
        };
        if !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            for v in &values {
                check_value(cmd, arg, v).map_err(|why| {
                    self.error(format!(
                        "invalid value {} for '{key}': {why}",
                        quote(&mask::value(arg.get_long().unwrap_or(key), v))
                    ))
                })?;
            }
        }
        Ok(values)
    }
}

/// The option with its variable and file default set.
fn apply(mut arg: Arg, setting: &Setting) -> Arg {
    if arg.get_env().is_none()
        && let Some(env) = &setting.env
    {
        arg = arg.env(env.clone());
    }
    let reveals = |v: &String| mask::value(&setting.long, v) != *v;
    let hide = setting.secret
        || setting.builtin.iter().any(reveals)
        || setting.file.iter().flatten().any(reveals);
    if hide {
        arg = arg.hide_env_values(true).hide_default_value(true);
    }
    if let Some(values) = &setting.file {
        // A file value satisfies a required option (clap counts only explicit values).
        arg = arg.default_values(values.clone()).required(false);
    }
    arg
}

/// The option's built-in default values; a switch's is `false` (clap adds it only
/// when it builds the command).
fn builtin(arg: &Arg) -> Vec<String> {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    match arg.get_action() {
        ArgAction::SetTrue if values.is_empty() => vec!["false".to_string()],
        ArgAction::SetFalse if values.is_empty() => vec!["true".to_string()],
        _ => values,
    }
}

/// A TOML value written as one command-line value.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn quote(value: &str) -> String {
    format!("'{value}'")
}

/// Runs `value` through the option's value parser (range, duration, name rules, ...)
/// on a one-option command, so a bad file value is reported with its key rather than
/// as an anonymous default at parse time.
fn check_value(cmd: &clap::Command, arg: &Arg, value: &str) -> std::result::Result<(), String> {
    let probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    let probe_cmd = clap::Command::new(cmd.get_name().to_string())
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(probe);
    let mut flag = OsString::from("--value=");
    flag.push(value);
    match probe_cmd.try_get_matches_from([flag]) {
        Ok(_) => Ok(()),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(inner) => inner.to_string(),
            None => {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                first.trim_start_matches("error: ").to_string()
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn layered(text: &str) -> Result<Layered> {
        let table = super::super::file::parse(std::path::Path::new("ferry.toml"), text)?;
        layer(crate::args::Cli::command(), "ferry.toml", Some(&table))
    }

    fn err(text: &str) -> String {
        match layered(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.message().to_string(),
        }
    }

    #[test]
    fn every_option_gets_one_distinct_variable() {
        let layered = layered("").expect("empty file");
        let mut seen = std::collections::BTreeSet::new();
        for s in &layered.settings {
            let env = s.env.clone().expect("every setting has a variable");
            assert!(env.starts_with("FERRY_"), "{env}");
            assert!(seen.insert(env.clone()), "{env} used twice");
            // The variables `consume --exec` hands to its command are not settings.
            for child in [
                "FERRY_MESSAGE_ID",
                "FERRY_QUEUE",
                "FERRY_ATTEMPT",
                "FERRY_ROUTE_KEY",
            ] {
                assert_ne!(env, child);
            }
        }
        let find = |key: &str| layered.settings.iter().find(|s| s.key == key);
        let max = find("queue.create.max-attempts").expect("queue.create.max-attempts");
        assert_eq!(max.env.as_deref(), Some("FERRY_QUEUE_CREATE_MAX_ATTEMPTS"));
        let backend = find("backend").expect("backend");
        assert_eq!(backend.env.as_deref(), Some("FERRY_BACKEND"));
        assert!(find("send.id").is_none(), "per-invocation");
        assert!(find("consume.queue").is_none(), "positional");
    }

    #[test]
    fn file_values_become_defaults() {
        let layered = layered(
            "backend = \"memory:\"\n[queue.create]\nmax_attempts = 4\n\
             [consume]\nexec = \"true\"\nuntil-empty = true\n[send]\nheader = [\"a=1\", \"b=2\"]\n",
        )
        .expect("valid");
        let find = |key: &str| {
            layered
                .settings
                .iter()
                .find(|s| s.key == key)
                .and_then(|s| s.file.clone())
        };
        assert_eq!(
            find("queue.create.max-attempts"),
            Some(vec!["4".to_string()])
        );
        assert_eq!(find("consume.until-empty"), Some(vec!["true".to_string()]));
        assert_eq!(find("send.header").map(|h| h.len()), Some(2));
        let m = layered
            .command
            .try_get_matches_from(["ferry", "consume", "jobs"])
            .expect("exec comes from the file");
        let (_, sub) = m.subcommand().expect("consume");
        assert_eq!(
            sub.get_one::<String>("exec").map(String::as_str),
            Some("true")
        );
        assert_eq!(sub.get_one::<bool>("until_empty"), Some(&true));
    }

    #[test]
    fn errors_name_the_key() {
        let e = err("[queue.create]\nmax-attemps = 3\n");
        assert!(
            e.starts_with("ferry.toml: unknown key 'queue.create.max-attemps'"),
            "{e}"
        );
        assert!(e.contains("max-attempts"), "lists what it takes: {e}");
        let e = err("[queue.create]\nmax-attempts = \"many\"\n");
        assert!(e.contains("'queue.create.max-attempts'"), "{e}");
        let e = err("[queue.create]\nmax-attempts = 0\n");
        assert!(e.contains("'queue.create.max-attempts'"), "{e}");
        let e = err("[consume]\nuntil-empty = \"yes\"\n");
        assert!(e.contains("'consume.until-empty' is a switch"), "{e}");
        let e = err("[consume]\ngrace = \"soon\"\n");
        assert!(e.contains("'consume.grace'"), "{e}");
        let e = err("queue = 3\n");
        assert!(e.contains("'queue' must be a table"), "{e}");
        let e = err("[send]\nid = \"x\"\n");
        assert!(e.contains("'send.id' cannot be set"), "{e}");
        let e = err("[queue.create]\nmax-attempts = 1\nmax_attempts = 2\n");
        assert!(e.contains("same setting"), "{e}");
        let e = err("bogus = 1\n");
        assert!(
            e.contains("unknown key 'bogus' (top level takes: backend"),
            "{e}"
        );
    }

    #[test]
    fn structured_sections_are_accepted() {
        layered(
            "[serve.alerts]\ninterval = \"30s\"\n[[serve.alerts.rules]]\nname = \"dead\"\n\
             [[serve.tokens]]\ntoken = \"t\"\nrole = \"admin\"\n",
        )
        .expect("structured sections");
        let e = err("[serve]\ntokens = \"x\"\n");
        assert!(
            e.contains("'serve.tokens' must be an array of tables"),
            "{e}"
        );
    }

    #[test]
    fn secrets_are_hidden_in_help() {
        let layered = layered("backend = \"redis://:pw@h:6379\"\n").expect("valid");
        let help = layered.command.clone().render_help().to_string();
        assert!(!help.contains("pw@"), "{help}");
    }
}
