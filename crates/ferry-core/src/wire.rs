//! The envelope: how a message travels through backends that store opaque bytes
//! (Redis, RabbitMQ) and how other languages read and write ferry messages.
//!
//! Version 1 is a MessagePack map with named fields, specified in `docs/wire-format.md`.
//! MessagePack because every language has a library for it, payloads stay binary (no
//! base64), and named fields let a later version add fields that older readers skip.
//! The first field a reader checks is `v`; a version newer than it understands is a
//! [`ErrorKind::Decode`] error, never a guess.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The envelope version this build writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// A message as it travels on the wire (see `docs/wire-format.md`).
///
/// ```
/// use ferry_core::wire::Envelope;
/// let env = Envelope::new("m-1", "hello");
/// let bytes = env.encode()?;
/// assert_eq!(Envelope::decode(&bytes)?, env);
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// Envelope version, [`ENVELOPE_VERSION`] when written by this build.
    pub v: u32,
    /// Message id.
    pub id: String,
    /// Payload bytes (MessagePack `bin`).
    pub payload: Bytes,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Route key of a publish, absent for a direct send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_key: Option<String>,
    /// Priority, higher first.
    #[serde(default)]
    pub priority: u8,
    /// Milliseconds since the Unix epoch when first sent.
    #[serde(default)]
    pub enqueued_at: i64,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

impl Envelope {
    /// A version-1 envelope with no headers, no route key, priority 0, enqueued now.
    pub fn new(id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: id.into(),
            payload: payload.into(),
            headers: BTreeMap::new(),
            route_key: None,
            priority: 0,
            enqueued_at: crate::time::now_millis(),
        }
    }

    /// The MessagePack bytes of this envelope.
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot encode message envelope").with_source(e)
        })
    }

    /// Parses MessagePack bytes; a newer version or malformed bytes are a
    /// [`ErrorKind::Decode`] error naming the problem.
    ///
    /// ```
    /// use ferry_core::{ErrorKind, wire::Envelope};
    /// let err = Envelope::decode(b"not msgpack").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Decode);
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let decode_err = |e: rmp_serde::decode::Error| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "bytes are not a ferry message envelope ({} bytes)",
                    bytes.len()
                ),
            )
            .with_source(e)
        };
        let version: VersionOnly = rmp_serde::from_slice(bytes).map_err(decode_err)?;
        if version.v == 0 || version.v > ENVELOPE_VERSION {
            return Err(Error::new(
                ErrorKind::Decode,
                format!(
                    "envelope version {} is not supported by this ferry (it reads version {ENVELOPE_VERSION}); upgrade the consumer",
                    version.v
                ),
            ));
        }
        rmp_serde::from_slice(bytes).map_err(decode_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes_stay_readable() {
        // Written by version 1; if this stops decoding, the wire format broke.
        let mut env = Envelope::new("m-1", &b"hi"[..]);
        env.enqueued_at = 1_700_000_000_000;
        env.headers.insert("k".into(), "v".into());
        let bytes = env.encode().expect("encode");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "86a17601a26964a36d2d31a77061796c6f6164c4026869a7686561646572738\
             1a16ba176a87072696f72697479 00ab656e7175657565645f6174cf0000018bcfe56800"
                .replace(' ', "")
        );
        assert_eq!(Envelope::decode(&bytes).expect("decode"), env);
    }

    #[test]
    fn newer_version_is_a_clear_error() {
        let mut env = Envelope::new("m", "p");
        env.v = 2;
        let bytes = rmp_serde::to_vec_named(&env).expect("encode");
        let err = Envelope::decode(&bytes).expect_err("v2");
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        #[derive(Serialize)]
        struct Future<'a> {
            v: u32,
            id: &'a str,
            #[serde(with = "serde_bytes_compat")]
            payload: &'a [u8],
            trace: &'a str,
        }
        mod serde_bytes_compat {
            pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b)
            }
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            v: 1,
            id: "x",
            payload: b"p",
            trace: "abc",
        })
        .expect("encode");
        let env = Envelope::decode(&bytes).expect("decode");
        assert_eq!(env.id, "x");
        assert_eq!(env.payload.as_ref(), b"p");
    }

    proptest! {
        #[test]
        fn round_trip(
            id in "[a-z0-9-]{1,40}",
            payload in prop::collection::vec(any::<u8>(), 0..300),
            headers in prop::collection::btree_map("[a-z]{1,8}", ".{0,20}", 0..5),
            route_key in prop::option::of("[a-z.]{0,20}"),
            priority in any::<u8>(),
            enqueued_at in 0i64..i64::MAX,
        ) {
            let env = Envelope { v: 1, id, payload: payload.into(), headers, route_key, priority, enqueued_at };
            let bytes = env.encode().expect("encode");
            prop_assert_eq!(Envelope::decode(&bytes).expect("decode"), env);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
