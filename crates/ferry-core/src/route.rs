//! Route-key matching with AMQP topic semantics.
//!
//! A route key is a list of words separated by `.`; a binding pattern is the same, where
//! the word `*` matches exactly one word and `#` matches zero or more words. This is
//! RabbitMQ's topic-exchange rule, and every ferry backend applies it identically (the
//! conformance suite checks it). The empty string is zero words, so it matches only the
//! patterns `""` and `#` (and `#.#`, ...).
//!
//! The matcher is a dynamic program over (pattern word, key word) pairs, so patterns
//! with many `#` stay linear-times-linear instead of backtracking exponentially.

fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// Whether `route_key` matches the binding `pattern`.
///
/// ```
/// use ferry_core::route_matches;
/// assert!(route_matches("order.*.paid", "order.eu.paid"));
/// assert!(!route_matches("order.*.paid", "order.paid"));
/// assert!(route_matches("order.#", "order"));
/// assert!(route_matches("order.#", "order.eu.paid"));
/// assert!(route_matches("#.paid", "order.eu.paid"));
/// assert!(!route_matches("order", "order.eu"));
/// ```
pub fn route_matches(pattern: &str, route_key: &str) -> bool {
    let p = words(pattern);
    let k = words(route_key);
    // reach[j] == true: the first i pattern words can consume exactly the first j key words.
    let mut reach = vec![false; k.len() + 1];
    reach[0] = true;
    for word in &p {
        let mut next = vec![false; k.len() + 1];
        match *word {
            "#" => {
                // zero or more: once reachable at j, reachable at every j' >= j.
                let mut any = false;
                for j in 0..=k.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            "*" => {
                next[1..].copy_from_slice(&reach[..k.len()]);
            }
            literal => {
                for j in 0..k.len() {
                    next[j + 1] = reach[j] && k[j] == literal;
                }
            }
        }
        reach = next;
    }
    reach[k.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, written as directly as possible (exponential, fine for tests).
    fn reference(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|n| reference(rest, &k[n..])),
            Some((&"*", rest)) => !k.is_empty() && reference(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && reference(rest, &k[1..]),
        }
    }

    #[test]
    fn table() {
        let cases = [
            ("", "", true),
            ("#", "", true),
            ("*", "", false),
            ("#", "a.b.c", true),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.b.b.c", true),
            ("a.*.c", "a.c", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("a.b", "a.b", true),
            ("a.b", "a.bb", false),
            ("#.#", "", true),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
        ];
        for (p, k, want) in cases {
            assert_eq!(route_matches(p, k), want, "pattern {p:?} key {k:?}");
        }
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c".to_string()),
            Just("".to_string()),
        ]
    }

    fn pattern_word() -> impl Strategy<Value = String> {
        prop_oneof![word(), Just("*".to_string()), Just("#".to_string())]
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            p in prop::collection::vec(pattern_word(), 0..7),
            k in prop::collection::vec(word(), 0..7),
        ) {
            let pattern = p.join(".");
            let key = k.join(".");
            let pw = words(&pattern);
            let kw = words(&key);
            prop_assert_eq!(route_matches(&pattern, &key), reference(&pw, &kw));
        }
    }
}
