//! Validators and suppression: checksums, entropy, a paired AWS secret, and the known example and
//! placeholder values that are never findings.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// GitHub's classic token checksum: `gh?_` + 30 random base62 characters + the CRC-32 of those 30,
/// in 6 base62 digits (most significant first, zero-padded).
pub(crate) fn github_crc_ok(token: &[u8]) -> bool {
    let Some(body) = token.get(4..) else { return false };
    if body.len() != 36 {
        return false;
    }
    let (random, sum) = body.split_at(30);
    let mut v = crc32fast::hash(random);
    let mut want = [b'0'; 6];
    for slot in want.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    v == 0 && want == sum
}

/// Shannon entropy of `s`, in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s {
        counts[usize::from(*b)] += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            #[allow(clippy::cast_precision_loss)]
            let p = *c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// The 40-character AWS secret access key in `window`, if any: base64-ish, at least one digit or
/// `/`+`+`, and a lowercase and an uppercase letter (so a 40-letter word is not one).
pub(crate) fn aws_secret_in(window: &[u8]) -> Option<(usize, usize)> {
    let is_char = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
    let mut i = 0;
    while i < window.len() {
        if !is_char(window[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < window.len() && is_char(window[i]) {
            i += 1;
        }
        let run = &window[start..i];
        if run.len() == 40
            && run.iter().any(u8::is_ascii_lowercase)
            && run.iter().any(u8::is_ascii_uppercase)
            && run.iter().any(|c| c.is_ascii_digit() || *c == b'/' || *c == b'+')
        {
            return Some((start, i));
        }
    }
    None
}

/// Why a matched value is not a finding, if it is a known example or a placeholder.
pub(crate) fn placeholder(value: &[u8]) -> Option<&'static str> {
    const EXAMPLES: &[&[u8]] = &[
        b"AKIAIOSFODNN7EXAMPLE",
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        b"je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        b"AKIAI44QH8DHBEXAMPLE",
    ];
    if EXAMPLES.contains(&value) {
        return Some("documented example value");
    }
    let lower: Vec<u8> = value.iter().map(u8::to_ascii_lowercase).collect();
    let has = |needle: &[u8]| memchr::memmem::find(&lower, needle).is_some();
    if has(b"example") || has(b"sample") || has(b"dummy") || has(b"placeholder") {
        return Some("example or placeholder value");
    }
    if has(b"xxxx") || has(b"****") || has(b"....") || has(b"0000000000") {
        return Some("masked value");
    }
    if has(b"${") || has(b"{{") || has(b"<your") || has(b"your_") || has(b"your-") || has(b"%(") {
        return Some("template variable");
    }
    if matches!(
        lower.as_slice(),
        b"changeme" | b"password" | b"secret" | b"redacted" | b"null" | b"none" | b"test" | b"pass"
    ) || has(b"changeme")
        || has(b"redacted")
    {
        return Some("placeholder word");
    }
    if value.len() >= 8 && value.iter().all(|c| *c == value[0]) {
        return Some("a repeated character");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_orders_values() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.01);
        assert!(entropy(b"q8Zr2LmXw9Tb4KpV7nYc") > 4.0);
    }

    #[test]
    fn aws_secret_needs_mixed_characters() {
        assert!(aws_secret_in(b"key = abcdefghijabcdefghijabcdefghijabcdefgh").is_none());
        assert!(aws_secret_in(b"key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz;").is_some());
    }
}
