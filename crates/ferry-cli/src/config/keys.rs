//! How a command-line option is named in the config file and in the environment.
//!
//! One mapping, derived from the option's place in the command tree, so every option
//! of every command (including commands added later) gets a file key and an
//! environment variable without being listed anywhere:
//!
//! | option                         | file key                                  | environment                       |
//! |--------------------------------|-------------------------------------------|-----------------------------------|
//! | `ferry --backend`              | `backend` (top level)                     | `FERRY_BACKEND` (declared)        |
//! | `ferry consume --concurrency`  | `concurrency` in `[consume]`              | `FERRY_CONSUME_CONCURRENCY`       |
//! | `ferry queue create --max-attempts` | `max-attempts` in `[queue.create]`   | `FERRY_QUEUE_CREATE_MAX_ATTEMPTS` |
//!
//! File keys may be written with `_` instead of `-` (`max_attempts`), since TOML users
//! expect either. An option that declares its own `env = "..."` keeps it.

/// The canonical form of a file key: `_` written as `-`, as in long option names.
pub fn normalize(key: &str) -> String {
    key.replace('_', "-")
}

/// The dotted name of an option or table: `queue.create.max-attempts`.
pub fn dotted(path: &[String], name: &str) -> String {
    let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
    parts.push(name);
    parts.join(".")
}

/// The dotted name of a command (`queue.create`), or `top level` for the root.
pub fn command_name(path: &[String]) -> String {
    if path.is_empty() {
        "top level".to_string()
    } else {
        path.join(".")
    }
}

/// The environment variable of option `long` of the command at `path`:
/// `FERRY_<COMMAND>_<SUBCOMMAND>_<OPTION>`, uppercased, `-` and `.` as `_`.
pub fn env_name(path: &[String], long: &str) -> String {
    let mut name = String::from("FERRY");
    for part in path.iter().map(String::as_str).chain(std::iter::once(long)) {
        name.push('_');
        name.extend(part.chars().map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        }));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name(&[], "backend"), "FERRY_BACKEND");
        assert_eq!(env_name(&path(&["serve"]), "bind"), "FERRY_SERVE_BIND");
        assert_eq!(
            env_name(&path(&["consume"]), "concurrency"),
            "FERRY_CONSUME_CONCURRENCY"
        );
        assert_eq!(
            env_name(&path(&["queue", "create"]), "max-attempts"),
            "FERRY_QUEUE_CREATE_MAX_ATTEMPTS"
        );
    }

    #[test]
    fn file_keys() {
        assert_eq!(normalize("max_attempts"), "max-attempts");
        assert_eq!(normalize("max-attempts"), "max-attempts");
        assert_eq!(
            dotted(&path(&["queue", "create"]), "lease"),
            "queue.create.lease"
        );
        assert_eq!(dotted(&[], "backend"), "backend");
        assert_eq!(command_name(&[]), "top level");
        assert_eq!(command_name(&path(&["queue", "create"])), "queue.create");
    }
}
