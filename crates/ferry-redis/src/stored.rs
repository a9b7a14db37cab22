//! Reading what the scripts store as text: a message's stored value (its `sent` history
//! event in front of the envelope) and history as netstrings (`len:bytes,`), which hold
//! error texts with any byte, newlines included, without escaping.

/// A stored message split into its `sent` history event (a netstring, empty when history
/// is off or the message was requeued) and its envelope. An envelope is MessagePack,
/// which never starts with an ASCII digit.
pub(crate) fn split_sent(stored: &[u8]) -> (&[u8], &[u8]) {
    if !stored.first().is_some_and(u8::is_ascii_digit) {
        return (&[], stored);
    }
    match next_netstring(stored) {
        Some((_, rest)) => stored.split_at(stored.len() - rest.len()),
        None => (&[], stored),
    }
}

/// The first netstring (`len:bytes,`) of `b` and what follows it.
fn next_netstring(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = b.iter().take(12).position(|&c| c == b':')?;
    let len: usize = std::str::from_utf8(&b[..colon]).ok()?.parse().ok()?;
    let start = colon + 1;
    let end = start
        .checked_add(len)
        .filter(|&e| e < b.len() && b[e] == b',')?;
    Some((&b[start..end], &b[end + 1..]))
}

/// The entries of a concatenation of netstrings; stops at the first malformed one.
pub(crate) fn netstrings(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((entry, rest)) = next_netstring(b) {
        out.push(entry);
        b = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_split_into_sent_event_and_envelope() {
        assert_eq!(
            split_sent(b"5:hello,\x82rest"),
            (&b"5:hello,"[..], &b"\x82rest"[..])
        );
        assert_eq!(split_sent(b"\x82only"), (&b""[..], &b"\x82only"[..]));
        // A digit without a well-formed netstring is all envelope.
        assert_eq!(split_sent(b"9:short,"), (&b""[..], &b"9:short,"[..]));
        assert_eq!(netstrings(b"1:a,2:bc,x"), [&b"a"[..], &b"bc"[..]]);
    }
}
