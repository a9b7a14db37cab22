//! Turning failures into one line on stderr and an exit status.
//!
//! Scripts branch on the status: 2 means "your input is wrong, fix the command"
//! (including every clap error), 1 means "the backend or the machine failed, retrying
//! later may help". People read the line, so it is exactly one line and names the fix.

use std::process::ExitCode;

use ferry::{Error, ErrorKind};

/// Exit status for input and usage errors.
pub const USAGE: u8 = 2;
/// Exit status for backend and runtime failures.
pub const FAILURE: u8 = 1;

/// The exit status for `err`: [`USAGE`] for errors in the caller's input, else [`FAILURE`].
pub fn status(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::InvalidName
        | ErrorKind::InvalidInput
        | ErrorKind::TooLarge
        | ErrorKind::QueueNotFound
        | ErrorKind::TopicNotFound
        | ErrorKind::MessageNotFound
        | ErrorKind::Unroutable => USAGE,
        _ => FAILURE,
    }
}

/// Whether `err` is a write to a closed stdout (`ferry dlq list | head`), which is not
/// worth a message.
fn is_broken_pipe(err: &Error) -> bool {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints `err` as one line on stderr and returns its exit code.
pub fn report(err: &Error) -> ExitCode {
    if err.kind() == ErrorKind::Io && is_broken_pipe(err) {
        return ExitCode::from(FAILURE);
    }
    eprintln!("error: {}", one_line(&err.to_string()));
    ExitCode::from(status(err))
}

/// Prints a clap parse error as one line (help and version output pass through
/// unchanged) and returns the exit code.
pub fn report_clap(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    match err.kind() {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Prints to stdout (or stderr for the missing-subcommand case); ignore a
            // closed pipe.
            let _ = err.print();
            let code = if err.use_stderr() { USAGE } else { 0 };
            ExitCode::from(code)
        }
        _ => {
            eprintln!("{}", clap_one_line(&err.render().to_string()));
            ExitCode::from(USAGE)
        }
    }
}

/// Collapses whitespace so a multi-line message prints as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Folds clap's multi-line error (message, indented argument list, usage block, "for
/// more information" hint) into one line, dropping the usage block.
fn clap_one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    let mut in_usage = false;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Usage:") {
            in_usage = true;
            continue;
        }
        if trimmed.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage {
            continue;
        }
        parts.push(trimmed);
    }
    let (hints, message): (Vec<&str>, Vec<&str>) = parts
        .into_iter()
        .partition(|p| p.starts_with("For more information"));
    let message = one_line(&message.join(" "));
    match hints.first() {
        Some(hint) => {
            let hint = hint
                .trim_end_matches('.')
                .replacen("For more", "for more", 1);
            format!("{message} ({hint})")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2() {
        assert_eq!(status(&Error::queue_not_found("q")), USAGE);
        assert_eq!(status(&Error::invalid_input("x")), USAGE);
        assert_eq!(status(&Error::new(ErrorKind::Unavailable, "down")), FAILURE);
        assert_eq!(status(&Error::new(ErrorKind::Io, "disk")), FAILURE);
    }

    #[test]
    fn clap_errors_fold_into_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  \
            <QUEUE>\n\nUsage: ferry send <QUEUE> [PAYLOAD]\n\nFor more information, try '--help'.\n";
        let line = clap_one_line(rendered);
        assert!(!line.contains('\n'));
        assert!(line.contains("<QUEUE>"), "{line}");
        assert!(!line.contains("Usage"), "{line}");
        assert!(
            line.ends_with("(for more information, try '--help')"),
            "{line}"
        );
    }
}
