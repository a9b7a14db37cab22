//! The parts of `ferry.toml` that are not command-line options, in one place.
//!
//! Most of the file mirrors the command line (see [`super::keys`]). Two kinds of key
//! are special and listed here so the layer, `config show` and the docs agree:
//!
//! - **structured sections**: tables too rich for a flag (alert rules, several API
//!   tokens with roles). The file accepts them, `config show` prints them masked, and
//!   the command that needs them reads them with [`super::Config::section`].
//! - **per-invocation options**: flags that say *what* one run acts on rather than *how*
//!   ferry behaves (`send --id`, `dlq requeue --all`). As a file or environment default
//!   they would silently apply to every run (every `send` deduplicated against one id,
//!   every requeue taking all), so they get neither.

/// The shape a structured section must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A table: `[serve.alerts]` (which may hold arrays of tables itself).
    Table,
    /// An array of tables: `[[serve.tokens]]`.
    ArrayOfTables,
}

/// A structured section: its dotted path, shape and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Structured {
    /// Dotted path from the top of the file, as written there: `serve.alerts`.
    pub path: &'static str,
    /// Its shape.
    pub shape: Shape,
    /// One line for error messages and docs.
    pub about: &'static str,
}

/// Every structured section the file may contain.
pub const STRUCTURED: &[Structured] = &[
    Structured {
        path: "serve.alerts",
        shape: Shape::Table,
        about: "alerting: [[serve.alerts.rules]] and [[serve.alerts.webhooks]]",
    },
    Structured {
        path: "serve.tokens",
        shape: Shape::ArrayOfTables,
        about: "API tokens with roles: [[serve.tokens]]",
    },
];

/// Options (dotted: `command.option`) that neither the file nor the environment sets.
pub const PER_INVOCATION: &[&str] = &[
    "config",
    "send.id",
    "publish.id",
    "dlq.requeue.all",
    "dlq.approve.all",
];

/// The structured section at `path`, if it is one.
pub fn structured(path: &str) -> Option<&'static Structured> {
    STRUCTURED.iter().find(|s| s.path == path)
}

/// Whether `path` is a table that holds structured sections but is not a command
/// (so that `[serve.tokens]` is accepted even in a build without `ferry serve`).
pub fn holds_structured(path: &str) -> bool {
    STRUCTURED.iter().any(|s| {
        s.path
            .strip_prefix(path)
            .is_some_and(|r| r.starts_with('.'))
    })
}

/// The names of the structured sections directly under `path` (`""` for the top).
pub fn children(path: &str) -> impl Iterator<Item = &'static str> + '_ {
    STRUCTURED.iter().filter_map(move |s| {
        let rest = if path.is_empty() {
            Some(s.path)
        } else {
            s.path.strip_prefix(path).and_then(|r| r.strip_prefix('.'))
        };
        rest.filter(|r| !r.contains('.'))
    })
}

/// Whether the option `dotted` is per-invocation (see the module docs).
pub fn is_per_invocation(dotted: &str) -> bool {
    PER_INVOCATION.contains(&dotted)
}

/// Checks that `value` has the shape of `section`, naming the key when it does not.
pub fn check_shape(section: &Structured, value: &toml::Value) -> Result<(), String> {
    let ok = match section.shape {
        Shape::Table => value.is_table(),
        Shape::ArrayOfTables => value
            .as_array()
            .is_some_and(|items| items.iter().all(toml::Value::is_table)),
    };
    if ok {
        return Ok(());
    }
    let wanted = match section.shape {
        Shape::Table => format!("a table [{}]", section.path),
        Shape::ArrayOfTables => format!("an array of tables [[{}]]", section.path),
    };
    Err(format!(
        "'{}' must be {wanted}, not {} ({})",
        section.path,
        article(value.type_str()),
        section.about
    ))
}

/// "a string", "an integer", "an array", ...
pub fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(structured("serve.alerts").is_some());
        assert!(structured("serve").is_none());
        assert!(holds_structured("serve"));
        assert!(!holds_structured("serve.alerts"));
        assert!(!holds_structured("serv"));
        let mut under_serve: Vec<_> = children("serve").collect();
        under_serve.sort_unstable();
        assert_eq!(under_serve, ["alerts", "tokens"]);
        assert_eq!(children("").count(), 0);
        assert!(is_per_invocation("send.id"));
        assert!(!is_per_invocation("send.delay"));
    }

    #[test]
    fn shapes() {
        let tokens = structured("serve.tokens").expect("listed");
        let array: toml::Value = toml::Value::Array(vec![toml::Value::Table(toml::Table::new())]);
        assert!(check_shape(tokens, &array).is_ok());
        let err = check_shape(tokens, &toml::Value::String("x".into())).expect_err("a string");
        assert!(
            err.contains("'serve.tokens' must be an array of tables"),
            "{err}"
        );
    }
}
