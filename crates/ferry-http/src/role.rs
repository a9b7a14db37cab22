//! Roles and the tokens that carry them.
//!
//! Two roles are enough for an operator console: `read` sees everything and changes
//! nothing; `admin` may do everything. A token is a long random secret with a name, and
//! the name (never the secret) is who the audit log says did something.

use serde::{Deserialize, Serialize};

/// What a token may do.
///
/// ```
/// use ferry_http::Role;
/// assert!(Role::Admin.allows(Role::Read));
/// assert!(!Role::Read.allows(Role::Admin));
/// assert_eq!("read-only".parse::<Role>().ok(), Some(Role::Read));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every `GET`: look, never change.
    #[serde(alias = "read-only", alias = "readonly", alias = "read_only")]
    Read,
    /// Everything.
    Admin,
}

impl Role {
    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        matches!((self, needed), (Role::Admin, _) | (Role::Read, Role::Read))
    }

    /// `"read"` or `"admin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ferry_core::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" | "read-only" | "readonly" | "read_only" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(ferry_core::Error::invalid_input(format!(
                "unknown role '{other}': use read or admin"
            ))),
        }
    }
}

/// The shortest token accepted: a guessable token defeats every other check.
pub const MIN_TOKEN_LEN: usize = 16;

/// A named token and its role, as configured (`[[serve.tokens]]` in ferry.toml).
///
/// ```
/// use ferry_http::{Role, TokenConfig};
/// let t = TokenConfig::new("ops", "0123456789abcdef0123", Role::Admin)?;
/// assert_eq!(t.name(), "ops");
/// assert!(TokenConfig::new("ops", "short", Role::Admin).is_err());
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    name: String,
    token: String,
    role: Role,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &"****")
            .field("role", &self.role)
            .finish()
    }
}

impl TokenConfig {
    /// A token; `InvalidInput` when the name is empty or the secret shorter than
    /// [`MIN_TOKEN_LEN`] characters.
    pub fn new(
        name: impl Into<String>,
        token: impl Into<String>,
        role: Role,
    ) -> ferry_core::Result<Self> {
        let t = TokenConfig {
            name: name.into(),
            token: token.into(),
            role,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks a deserialized token the way [`TokenConfig::new`] does.
    pub fn validate(&self) -> ferry_core::Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(ferry_core::Error::invalid_input(
                "a token needs a name of 1 to 64 printable characters (it is what the audit log shows)",
            ));
        }
        if self.token.chars().count() < MIN_TOKEN_LEN {
            return Err(ferry_core::Error::invalid_input(format!(
                "token '{name}' is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 24`"
            )));
        }
        Ok(())
    }

    /// The name the audit log shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The secret.
    pub(crate) fn secret(&self) -> &str {
        &self.token
    }
}

/// A fresh random secret: 32 bytes from the operating system, hex-encoded.
///
/// ```
/// let t = ferry_http::generate_token()?;
/// assert_eq!(t.len(), 64);
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn generate_token() -> ferry_core::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ferry_core::Error::new(
            ferry_core::ErrorKind::Io,
            format!("the operating system gave no random bytes: {e}"),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
