//! Lowercase hex, written once for the workspace: hashes, keys and signatures in the audit log's
//! formats, fingerprints, AWS signatures, generated secrets.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push(&mut s, bytes);
    s
}

/// Appends `bytes` as lowercase hex to `out`, digit by digit: nothing but `out` ever holds the
/// digits, so a secret written into a buffer sized once (and zeroized on drop) leaves no copy.
pub fn push(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Appends `bytes` as lowercase hex to `out` through a stack buffer (one copy per 32 bytes, which
/// the audit log's append loop, writing two hashes per entry, measurably prefers to a push per
/// digit). Not for secrets: the stack buffer is not zeroized.
pub fn encode_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        out.extend_from_slice(&buf[..chunk.len() * 2]);
    }
}

/// Strict lowercase hex of exactly `N` bytes.
pub fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_encoders_agree_and_decode_inverts_them() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode(&bytes);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(&text[text.len() - 4..], "feff");
        let mut raw = Vec::new();
        encode_into(&mut raw, &bytes);
        assert_eq!(raw, text.as_bytes());
        let mut pushed = String::from("x");
        push(&mut pushed, &bytes);
        assert_eq!(pushed[1..], text);
        let first: [u8; 4] = decode("00010203").unwrap_or_default();
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(decode::<2>("ABCD"), None, "lowercase only");
        assert_eq!(decode::<2>("abc"), None, "exactly N bytes");
    }
}
