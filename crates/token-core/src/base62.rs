//! Fixed-width base62 (`0-9A-Za-z`): URL-safe, shell-safe and selected whole by a double click.

use rand::TryRng;

/// The alphabet, in digit order.
pub(crate) const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const INVALID: u8 = 0xFF;

/// Digit value of each byte, or `INVALID`.
const DIGITS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 62 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The digit value of `c`, if it is in the alphabet.
#[cfg(test)]
pub(crate) fn digit(c: u8) -> Option<u8> {
    let d = DIGITS[c as usize];
    (d != INVALID).then_some(d)
}

/// Whether every byte is in the alphabet; branch-free so that it vectorises.
#[inline]
pub(crate) fn all_valid(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &c| ok & c.is_ascii_alphanumeric())
}

/// Index of the first byte of `s` outside the alphabet.
#[inline]
pub(crate) fn first_invalid(s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| DIGITS[c as usize] == INVALID)
}

/// Writes `v` as exactly `out.len()` digits, most significant first.
/// Returns `false` if `v` does not fit.
pub(crate) fn encode_fixed(mut v: u128, out: &mut [u8]) -> bool {
    // Up to ten digits at a time in u64 arithmetic (62^10 < 2^64): one u128 division per ten
    // digits instead of two per digit.
    let mut rest = out;
    while !rest.is_empty() {
        let n = rest.len().min(10);
        let split = rest.len() - n;
        let (head, tail) = rest.split_at_mut(split);
        let base = 62u128.pow(n as u32);
        let mut low = (v % base) as u64;
        v /= base;
        for slot in tail.iter_mut().rev() {
            *slot = ALPHABET[(low % 62) as usize];
            low /= 62;
        }
        rest = head;
    }
    v == 0
}

/// Reads a fixed-width number; `None` on a bad digit or overflow of `u128`.
#[cfg(test)]
pub(crate) fn decode_fixed(s: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &c in s {
        v = v.checked_mul(62)?.checked_add(u128::from(digit(c)?))?;
    }
    Some(v)
}

/// Reads up to 10 digits into a `u64` (62^10 < 2^64); `None` on a bad digit.
#[inline]
fn decode_u64(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut bad = false;
    for &c in s {
        let d = DIGITS[c as usize];
        bad |= d == INVALID;
        v = v.wrapping_mul(62).wrapping_add(u64::from(d));
    }
    (!bad).then_some(v)
}

/// Reads a 17-digit id as two independent `u64` halves (short dependency chains), then joins
/// them: `high · 62^9 + low`. 62^17 < 2^128, so it never overflows.
#[inline]
pub(crate) fn decode_17(s: &[u8; 17]) -> Option<u128> {
    const P9: u128 = 62u128.pow(9);
    let high = decode_u64(&s[..8])?;
    let low = decode_u64(&s[8..])?;
    Some(u128::from(high) * P9 + u128::from(low))
}

/// Reads a 6-digit checksum.
#[inline]
pub(crate) fn decode_6(s: &[u8; 6]) -> Option<u64> {
    decode_u64(s)
}

/// Fills `out` with uniformly random alphabet characters from `rng`
/// (rejection sampling: bytes ≥ 248 are discarded, so each character carries log2(62) ≈ 5.954 bits).
pub(crate) fn fill_random<R: TryRng + ?Sized>(rng: &mut R, out: &mut [u8]) -> Result<(), R::Error> {
    let mut pool = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        rng.try_fill_bytes(&mut pool)?;
        for &b in &pool {
            if b < 248 && filled < out.len() {
                out[filled] = ALPHABET[(b % 62) as usize];
                filled += 1;
            }
        }
    }
    zeroize::Zeroize::zeroize(&mut pool);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_the_edges() {
        let max17 = 62u128.pow(17) - 1;
        for v in [0, 1, 61, 62, 3843, max17] {
            let mut out = [0u8; 17];
            assert!(encode_fixed(v, &mut out));
            assert_eq!(decode_fixed(&out), Some(v));
        }
        let mut out = [0u8; 17];
        assert!(!encode_fixed(max17 + 1, &mut out), "62^17 does not fit in 17 digits");
        for v in [0, 1, 62u128.pow(9) - 1, 62u128.pow(9), 62u128.pow(16) * 61 + 7, max17] {
            let mut out = [0u8; 17];
            assert!(encode_fixed(v, &mut out));
            assert_eq!(decode_17(&out), Some(v), "{v}");
        }
        assert_eq!(decode_17(b"0000000000000000-"), None);
        assert_eq!(decode_6(b"zzzzzz"), Some(62u64.pow(6) - 1));
    }

    #[test]
    fn rejects_bytes_outside_the_alphabet() {
        for c in [b'-', b'_', b'+', b'/', b'=', b' ', 0, 0x80, 0xFF] {
            assert_eq!(digit(c), None);
        }
        assert_eq!(first_invalid(b"abc-def"), Some(3));
        assert_eq!(decode_fixed(b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), None, "overflow is refused");
    }

    #[test]
    fn random_fill_stays_in_alphabet() {
        let mut out = [0u8; 500];
        fill_random(&mut rand::rngs::SysRng, &mut out).expect("os rng");
        assert_eq!(first_invalid(&out), None);
        // Every digit value shows up in 500 draws with overwhelming probability (1 - 62·(61/62)^500).
        let mut seen = [false; 62];
        for c in out {
            seen[digit(c).expect("alphabet") as usize] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > 55);
    }
}
