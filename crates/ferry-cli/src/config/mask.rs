//! Hiding secrets in what ferry prints about its configuration.
//!
//! `ferry config show` is meant to be pasted into tickets and chat, so it must never
//! print a credential: values of options whose name says they are secret (token,
//! password, secret, key) are replaced whole, and passwords inside URLs
//! (`redis://:pw@host`, `amqp://user:pw@host`, `?password=...`) are replaced in place,
//! keeping the rest of the URL readable. Help output hides the same values (clap's
//! `hide_env_values` / `hide_default_value`, set by the layer).

/// What a hidden value is printed as.
pub const MASK: &str = "****";

/// Words that make an option or key secret when they appear in its name (split on
/// `-`, `_` and `.`).
const SECRET_WORDS: &[&str] = &[
    "token",
    "tokens",
    "password",
    "passwd",
    "pass",
    "secret",
    "key",
    "apikey",
    "credentials",
];

/// Whether an option or key named `name` holds a secret (`token`, `api-key`,
/// `redis_password`, ...).
pub fn is_secret_name(name: &str) -> bool {
    name.split(['-', '_', '.'])
        .any(|word| SECRET_WORDS.contains(&word.to_ascii_lowercase().as_str()))
}

/// `value` as it may be printed for the option or key `name`: [`MASK`] for a non-empty
/// secret, else with URL passwords masked.
pub fn value(name: &str, value: &str) -> String {
    if is_secret_name(name) && !value.is_empty() {
        MASK.to_string()
    } else {
        url(value)
    }
}

/// `text` with the password of a URL masked (`scheme://user:pw@host` →
/// `scheme://user:****@host`) and the values of secret query parameters masked
/// (`?password=pw` → `?password=****`). Anything that is not a URL comes back unchanged.
pub fn url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let scheme = &text[..scheme_end];
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return text.to_string();
    }
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..scheme_end + 3]);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, pw)) if !pw.is_empty() => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                _ => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(&query(tail));
    out
}

/// The path, query and fragment of a URL with secret query values masked.
fn query(tail: &str) -> String {
    let Some((path, rest)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let (params, fragment) = match rest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (rest, None),
    };
    let params: Vec<String> = params
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if is_secret_name(k) && !v.is_empty() => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A JSON document (a structured config section) with every secret masked: string
/// values under secret keys, and URL passwords anywhere.
pub fn json(doc: &serde_json::Value) -> serde_json::Value {
    json_under(None, doc)
}

/// `text` cut to its scheme and host: webhook URLs (Slack, DingTalk, WeCom) carry their
/// secret in the path or query, so nothing after the host is shown.
pub fn url_origin(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return MASK.to_string();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}/{MASK}")
}

fn json_under(key: Option<&str>, doc: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match doc {
        // Webhook URLs are secrets as a whole; header values (Authorization, ...) too.
        Value::String(s) if key == Some("url") => Value::String(url_origin(s)),
        Value::Object(map) if key == Some("headers") => Value::Object(
            map.keys()
                .map(|k| (k.clone(), Value::String(MASK.to_string())))
                .collect(),
        ),
        Value::String(s) => Value::String(match key {
            Some(k) => value(k, s),
            None => url(s),
        }),
        Value::Array(items) => Value::Array(items.iter().map(|v| json_under(key, v)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_under(Some(k), v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_and_headers_are_masked() {
        let doc = serde_json::json!({"webhooks": [{
            "url": "https://hooks.slack.com/services/T000/B000/XXXX",
            "headers": {"Authorization": "Bearer s3cret"},
            "name": "ops",
        }]});
        let masked = json(&doc).to_string();
        assert!(
            !masked.contains("XXXX") && !masked.contains("s3cret"),
            "{masked}"
        );
        assert!(masked.contains("https://hooks.slack.com/****"), "{masked}");
        assert!(masked.contains("\"name\":\"ops\""), "{masked}");
    }

    #[test]
    fn secret_names() {
        for name in [
            "token",
            "api-key",
            "redis_password",
            "secret",
            "serve.tokens",
            "KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "bind",
            "backend",
            "max-attempts",
            "from-redis-list",
            "monkey",
            "tokenizer",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_values_are_replaced_whole() {
        assert_eq!(value("token", "s3cr3t"), MASK);
        assert_eq!(value("token", ""), "");
        assert_eq!(value("bind", "0.0.0.0:8080"), "0.0.0.0:8080");
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url("redis://:pw@h:6379/0"), "redis://:****@h:6379/0");
        assert_eq!(
            url("amqp://guest:guest@h:5672/%2f"),
            "amqp://guest:****@h:5672/%2f"
        );
        assert_eq!(
            url("redis+sentinel://:pw@s1:26379,s2:26379/mymaster"),
            "redis+sentinel://:****@s1:26379,s2:26379/mymaster"
        );
        assert_eq!(url("redis://user@h"), "redis://user@h");
        assert_eq!(url("redis://:@h"), "redis://:@h");
        assert_eq!(url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            url("postgres://h/db?user=u&password=pw#x"),
            "postgres://h/db?user=u&password=****#x"
        );
        // An '@' in the path is not userinfo.
        assert_eq!(url("https://h/a:b@c"), "https://h/a:b@c");
        assert_eq!(url("file:./data"), "file:./data");
        assert_eq!(url("not a url: x://"), "not a url: x://");
    }

    #[test]
    fn json_sections() {
        let doc = serde_json::json!({
            "tokens": [{"name": "ci", "token": "abc", "role": "admin"}],
            "webhooks": [{"url": "https://u:pw@hooks.example/x"}],
            "limit": 3
        });
        let masked = json(&doc);
        assert_eq!(masked["tokens"][0]["token"], MASK);
        assert_eq!(
            masked["tokens"][0]["name"], "ci",
            "a token's name is not secret"
        );
        assert_eq!(
            json(&serde_json::json!({"tokens": ["a", "b"]}))["tokens"][1],
            MASK
        );
        assert_eq!(
            masked["webhooks"][0]["url"], "https://hooks.example/****",
            "a webhook URL shows only where it goes"
        );
        assert_eq!(masked["limit"], 3);
    }
}
