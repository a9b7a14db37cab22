//! Resolving and printing every setting with where its value came from.
//!
//! For the command being run (`config show` itself and the top-level options) clap's
//! own record of each value's source is used; every other command's settings are
//! resolved the way clap would resolve them: its variable if set, else the file, else
//! the built-in default. Every printed value goes through [`super::mask`].

use clap::parser::ValueSource;
use ferry::Result;
use serde::Serialize;

use super::layer::Setting;
use super::{Config, file, mask, sections};
use crate::output::{Align, outln, print_json as json_out, table};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The command line.
    Flag,
    /// A `FERRY_*` variable.
    Env,
    /// The config file.
    File,
    /// The built-in default (or no value at all).
    Default,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// One resolved setting, masked, as printed.
#[derive(Debug, Serialize)]
pub struct Resolved {
    /// Dotted key: `queue.create.max-attempts`.
    pub key: String,
    /// The value(s), masked; `null` when the option has none.
    pub value: Value,
    /// Where it came from.
    pub source: Source,
    /// Its environment variable.
    pub env: Option<String>,
}

/// A setting's value: one string, several (repeatable options), or none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// No value (an unset optional option).
    None,
    /// A single-valued option.
    One(String),
    /// A repeatable option.
    Many(Vec<String>),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::None => "-".to_string(),
            Value::One(v) => v.clone(),
            Value::Many(vs) if vs.is_empty() => "-".to_string(),
            Value::Many(vs) => vs.join(", "),
        }
    }
}

/// The JSON document of `config show --json`.
#[derive(Debug, Serialize)]
struct Doc {
    file: Option<FileDoc>,
    settings: Vec<Resolved>,
    sections: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct FileDoc {
    path: String,
    chosen: &'static str,
}

/// Every setting, resolved and masked, with `config` (the file itself) first.
pub fn resolve(config: &Config) -> Vec<Resolved> {
    let mut out = vec![config_setting(config)];
    out.extend(config.settings.iter().map(|s| resolve_one(config, s)));
    out
}

/// The structured sections present in the file, masked, as JSON.
pub fn sections(config: &Config) -> serde_json::Map<String, serde_json::Value> {
    sections::STRUCTURED
        .iter()
        .filter_map(|s| {
            let value = config.section(s.path)?;
            let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
            Some((s.path.to_string(), mask::json(&json)))
        })
        .collect()
}

/// `ferry config show`: a table, then one line per structured section.
pub fn print_text(config: &Config) -> Result<()> {
    match &config.file {
        Some(f) => outln!("config file: {} ({})", f.display(), chosen_words(f.chosen))?,
        None => outln!("config file: none")?,
    }
    let rows: Vec<Vec<String>> = resolve(config)
        .into_iter()
        .map(|r| {
            vec![
                r.key,
                r.value.text(),
                r.source.as_str().to_string(),
                r.env.unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    let header = [
        ("SETTING", Align::Left),
        ("VALUE", Align::Left),
        ("SOURCE", Align::Left),
        ("ENV", Align::Left),
    ];
    outln!("{}", table(&header, &rows))?;
    for (path, value) in sections(config) {
        let size = match &value {
            serde_json::Value::Array(items) if items.len() == 1 => "1 entry".to_string(),
            serde_json::Value::Array(items) => format!("{} entries", items.len()),
            serde_json::Value::Object(map) if map.len() == 1 => "1 key".to_string(),
            serde_json::Value::Object(map) => format!("{} keys", map.len()),
            _ => "a value".to_string(),
        };
        outln!("section {path} (file): {size}; see --json")?;
    }
    Ok(())
}

/// `ferry config show --json`.
pub fn print_json(config: &Config) -> Result<()> {
    let doc = Doc {
        file: config.file.as_ref().map(|f| FileDoc {
            path: f.display(),
            chosen: f.chosen.source(),
        }),
        settings: resolve(config),
        sections: sections(config),
    };
    json_out(&doc)
}

fn chosen_words(chosen: file::Chosen) -> &'static str {
    match chosen {
        file::Chosen::Flag => "from --config",
        file::Chosen::Env => "from FERRY_CONFIG",
        file::Chosen::Default => "found in the working directory",
    }
}

/// The `config` pseudo-setting: which file is in use and why.
fn config_setting(config: &Config) -> Resolved {
    let (value, source) = match &config.file {
        Some(f) => (
            Value::One(f.display()),
            match f.chosen {
                file::Chosen::Flag => Source::Flag,
                file::Chosen::Env => Source::Env,
                file::Chosen::Default => Source::Default,
            },
        ),
        None => (Value::None, Source::Default),
    };
    Resolved {
        key: "config".to_string(),
        value,
        source,
        env: Some(file::ENV.to_string()),
    }
}

fn resolve_one(config: &Config, setting: &Setting) -> Resolved {
    let (values, source) = match invoked(&config.matches, &setting.command) {
        Some(m) => from_matches(m, setting),
        None => by_precedence(setting),
    };
    let masked: Vec<String> = values
        .iter()
        .map(|v| mask::value(&setting.long, v))
        .collect();
    let value = if setting.multiple {
        Value::Many(masked)
    } else {
        masked.into_iter().next().map_or(Value::None, Value::One)
    };
    Resolved {
        key: setting.key.clone(),
        value,
        source,
        env: setting.env.clone(),
    }
}

/// The matches of the command at `path` if it is the one being run (or its ancestor).
fn invoked<'m>(root: &'m clap::ArgMatches, path: &[String]) -> Option<&'m clap::ArgMatches> {
    let mut m = root;
    for name in path {
        m = m.subcommand_matches(name)?;
    }
    Some(m)
}

/// The value and source clap recorded.
fn from_matches(m: &clap::ArgMatches, setting: &Setting) -> (Vec<String>, Source) {
    let values: Vec<String> = m
        .get_raw(&setting.id)
        .into_iter()
        .flatten()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let source = match m.value_source(&setting.id) {
        Some(ValueSource::CommandLine) => Source::Flag,
        Some(ValueSource::EnvVariable) => Source::Env,
        Some(ValueSource::DefaultValue) if setting.file.is_some() => Source::File,
        _ => Source::Default,
    };
    (values, source)
}

/// What clap would resolve for a command that is not being run.
fn by_precedence(setting: &Setting) -> (Vec<String>, Source) {
    if let Some(value) = setting.env.as_ref().and_then(std::env::var_os) {
        return (vec![value.to_string_lossy().into_owned()], Source::Env);
    }
    if let Some(values) = &setting.file {
        return (values.clone(), Source::File);
    }
    (setting.builtin.clone(), Source::Default)
}
