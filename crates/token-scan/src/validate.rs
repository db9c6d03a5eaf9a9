//! Validators and suppression: checksums (GitHub's and npm's, Grafana's, PyPI's macaroon
//! structure), entropy, a rule's partner value, and the known example and placeholder values that
//! are never findings.

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

/// Grafana's prefixed-key checksum (Grafana's `pkg/components/satokengen`: `gl` + service id +
/// `_` + secret, then `_` + the CRC-32 (IEEE) of all that, little-endian, in lowercase hex).
pub(crate) fn grafana_crc_ok(token: &[u8]) -> bool {
    let Some(sep) = token.iter().rposition(|c| *c == b'_') else { return false };
    let (head, sum) = (&token[..sep], &token[sep + 1..]);
    let mut want = Vec::with_capacity(8);
    token_core::hex::encode_into(&mut want, &crc32fast::hash(head).to_le_bytes());
    sum == want.as_slice()
}

/// A PyPI API token (`pypi-` + base64 of a version-2 macaroon, PyPI's documented format): the
/// macaroon's fields parse — a location (`pypi.org` or `test.pypi.org`) and an identifier, caveats
/// each ended by an end-of-section, an end-of-section, then a 32-byte signature — and nothing is
/// left over.
pub(crate) fn pypi_macaroon_ok(token: &[u8]) -> bool {
    let Some(b) = token.strip_prefix(b"pypi-").and_then(base64_decode) else { return false };
    macaroon_v2(&b).is_some_and(|location| location == b"pypi.org" || location == b"test.pypi.org")
}

/// The location of a version-2 binary macaroon, if it parses whole.
fn macaroon_v2(b: &[u8]) -> Option<&[u8]> {
    const EOS: u64 = 0;
    const LOCATION: u64 = 1;
    const IDENTIFIER: u64 = 2;
    const VID: u64 = 4;
    const SIGNATURE: u64 = 6;
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let c = *b.get(*at)?;
            *at += 1;
            v |= u64::from(c & 0x7f) << shift;
            if c & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    // One field: its type, and its data (none for an end-of-section).
    fn field<'a>(b: &'a [u8], at: &mut usize) -> Option<(u64, &'a [u8])> {
        let kind = varint(b, at)?;
        if kind == EOS {
            return Some((EOS, &[]));
        }
        let len = usize::try_from(varint(b, at)?).ok()?;
        let data = b.get(*at..at.checked_add(len)?)?;
        *at += len;
        Some((kind, data))
    }
    if b.first() != Some(&2) {
        return None;
    }
    let mut at = 1;
    let (mut kind, location) = field(b, &mut at)?;
    let location = if kind == LOCATION {
        kind = field(b, &mut at)?.0;
        location
    } else {
        &[][..]
    };
    if kind != IDENTIFIER || field(b, &mut at)?.0 != EOS {
        return None;
    }
    // Caveats, each [location] identifier [vid] EOS; an empty one ends them.
    loop {
        let (mut kind, _) = field(b, &mut at)?;
        if kind == EOS {
            break;
        }
        if kind == LOCATION {
            kind = field(b, &mut at)?.0;
        }
        if kind != IDENTIFIER {
            return None;
        }
        kind = field(b, &mut at)?.0;
        if kind == VID {
            kind = field(b, &mut at)?.0;
        }
        if kind != EOS {
            return None;
        }
    }
    let (kind, signature) = field(b, &mut at)?;
    (kind == SIGNATURE && signature.len() == 32 && at == b.len()).then_some(location)
}

/// Base64, standard or URL-safe alphabet, padding optional.
pub(crate) fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"=")).unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The match of a pair's regex within `window` of `data` (its capture `group`) nearest to `own`
/// (the rule's own match, which it must not overlap) that, when `mixed`, holds a lowercase letter,
/// an uppercase letter and a digit or a symbol. The regex runs on `data` itself, from the window's
/// start to past its end, so that its assertions see the bytes around a candidate and a value the
/// window's edge would cut is seen whole (and refused, if it is then too long). The search resumes
/// at the end of each candidate, so context a regex consumes around one (a delimiter) is seen again
/// by the next. A candidate `taken` says is another value's partner already is passed over.
pub(crate) fn partner(
    re: &regex::bytes::Regex,
    group: usize,
    mixed: bool,
    data: &[u8],
    window: (usize, usize),
    own: (usize, usize),
    taken: &dyn Fn((usize, usize)) -> bool,
) -> Option<(usize, usize)> {
    let distance = |(s, e): (usize, usize)| if e <= own.0 { own.0 - e } else { s.saturating_sub(own.1) };
    let hay = &data[..data.len().min(window.1.saturating_add(1024))];
    let mut best: Option<(usize, usize)> = None;
    let mut at = window.0;
    while at <= window.1 {
        let Some(caps) = re.captures_at(hay, at) else { break };
        let Some(whole) = caps.get(0) else { break };
        let Some(m) = caps.get(group) else {
            at = whole.end().max(whole.start() + 1);
            continue;
        };
        at = m.end().max(whole.start() + 1);
        if m.end() > window.1 {
            break;
        }
        let v = &hay[m.range()];
        let mixed_ok = !mixed
            || (v.iter().any(u8::is_ascii_lowercase)
                && v.iter().any(u8::is_ascii_uppercase)
                && v.iter().any(|c| !c.is_ascii_alphabetic()));
        let found = (m.start(), m.end());
        if mixed_ok
            && !(m.start() < own.1 && own.0 < m.end())
            && best.is_none_or(|b| distance(found) < distance(b))
            && !taken(found)
        {
            best = Some(found);
        }
        if m.start() > own.1 && best.is_some_and(|b| distance(b) <= m.start() - own.1) {
            break;
        }
    }
    best
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
    fn a_mixed_partner_needs_both_cases_and_a_digit_or_symbol() {
        let re =
            regex::bytes::Regex::new(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)").unwrap();
        let find = |w: &[u8]| partner(&re, 1, true, w, (0, w.len()), (0, 0), &|_| false);
        assert!(find(b"key = abcdefghijabcdefghijabcdefghijabcdefgh").is_none());
        assert!(find(b"key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz;").is_some());
        // A rejected run's delimiter is seen again by the next.
        assert_eq!(
            find(b"abcdefghijabcdefghijabcdefghijabcdefghij wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz"),
            Some((41, 81))
        );
        // A run the window's end cuts is seen whole: 50 characters, not a 40-character key.
        let long = b"key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzzabcdefghij";
        assert_eq!(partner(&re, 1, true, long, (0, 46), (0, 0), &|_| false), None);
        // A candidate taken already is passed over for the next nearest.
        let two = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz qJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz";
        assert_eq!(partner(&re, 1, true, two, (0, two.len()), (0, 0), &|p| p == (0, 40)), Some((41, 81)));
    }

    #[test]
    fn grafana_checksums_are_little_endian_hex() {
        let head = b"glsa_abcdefghijklmnopqrstuvwxyzABCDEF";
        let sum: String = crc32fast::hash(head).to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("{}_{sum}", std::str::from_utf8(head).unwrap());
        assert!(grafana_crc_ok(token.as_bytes()));
        let bad = format!("{}_{}", std::str::from_utf8(head).unwrap(), "00000000");
        assert!(!grafana_crc_ok(bad.as_bytes()));
    }

    #[test]
    fn macaroons_parse_whole_or_not_at_all() {
        assert_eq!(base64_decode(b"AgEIcHlwaS5vcmc").unwrap(), b"\x02\x01\x08pypi.org");
        let mut m = b"\x02\x01\x08pypi.org\x02\x03abc\x00\x02\x02{}\x00\x00\x06\x20".to_vec();
        m.extend_from_slice(&[7u8; 32]);
        assert_eq!(macaroon_v2(&m), Some(&b"pypi.org"[..]));
        assert_eq!(macaroon_v2(&m[..m.len() - 1]), None);
        let mut longer = m.clone();
        longer.push(0);
        assert_eq!(macaroon_v2(&longer), None);
    }
}
