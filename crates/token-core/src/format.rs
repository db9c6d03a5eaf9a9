//! The presented token format: `<prefix>_<id><secret><checksum>`.
//!
//! See `docs/token-format.md` at the repository root for the specification and
//! `tests/vectors/token-format.json` for test vectors.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::base62;
use crate::error::TokenFormatError;

/// Characters of the public id: 17 base62 digits, 101.2 bits.
pub const ID_LEN: usize = 17;
/// Characters of the secret: 43 base62 digits, 256.03 bits.
pub const SECRET_LEN: usize = 43;
/// Characters of the checksum: CRC-32 (IEEE) as 6 base62 digits.
pub const CHECKSUM_LEN: usize = 6;
/// Characters after the separator.
pub const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 32;
/// Longest presented token accepted; anything longer is refused before it is read.
pub const MAX_TOKEN_LEN: usize = MAX_PREFIX_LEN + 1 + BODY_LEN;

/// An issuer-chosen prefix such as `acme_prod`, which lets a scanner recognise the issuer's tokens.
///
/// 1 to 32 characters: a lowercase ASCII letter, then lowercase letters, digits and single
/// underscores, not ending with an underscore.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenPrefix(Box<str>);

impl TokenPrefix {
    /// Validates and wraps a prefix.
    pub fn new(prefix: &str) -> Result<Self, TokenFormatError> {
        if is_valid_prefix(prefix.as_bytes()) {
            Ok(Self(prefix.into()))
        } else {
            Err(TokenFormatError::BadPrefix)
        }
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn is_valid_prefix(p: &[u8]) -> bool {
    let (Some(first), Some(last)) = (p.first(), p.last()) else {
        return false;
    };
    p.len() <= MAX_PREFIX_LEN
        && first.is_ascii_lowercase()
        && *last != b'_'
        && p.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !p.windows(2).any(|w| w == b"__")
}

impl fmt::Display for TokenPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TokenPrefix {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for TokenPrefix {
    type Error = TokenFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<TokenPrefix> for String {
    fn from(p: TokenPrefix) -> String {
        p.0.into()
    }
}

/// The public id of a token: safe to log, the lookup key, and what an operator names to revoke.
///
/// Its text form is 17 base62 characters; it is not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(u128);

impl TokenId {
    /// The id's numeric value (below 62^17).
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// An id from its numeric value; `None` if it is not below 62^17.
    pub fn from_u128(v: u128) -> Option<Self> {
        (v < 62u128.pow(ID_LEN as u32)).then_some(Self(v))
    }

    /// The 17 characters of the text form.
    pub fn to_chars(self) -> [u8; ID_LEN] {
        let mut out = [0u8; ID_LEN];
        // Cannot fail: the value is below 62^17 by construction.
        let _ = base62::encode_fixed(self.0, &mut out);
        out
    }

    #[inline]
    pub(crate) fn from_chars(chars: &[u8]) -> Option<Self> {
        base62::decode_17(chars.try_into().ok()?).map(Self)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars = self.to_chars();
        // The alphabet is ASCII.
        f.write_str(std::str::from_utf8(&chars).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl FromStr for TokenId {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_LEN {
            return Err(TokenFormatError::BadIdLength { found: s.len().min(MAX_TOKEN_LEN + 1) });
        }
        if let Some(position) = base62::first_invalid(s.as_bytes()) {
            return Err(TokenFormatError::BadCharacter { position });
        }
        Self::from_chars(s.as_bytes()).ok_or(TokenFormatError::BadCharacter { position: 0 })
    }
}

impl TryFrom<String> for TokenId {
    type Error = TokenFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TokenId> for String {
    fn from(id: TokenId) -> String {
        id.to_string()
    }
}

/// A syntactically valid presented token, borrowed from the caller's input.
///
/// Holds a view of the secret characters; its `Debug` shows only the prefix and id.
pub struct ParsedToken<'a> {
    prefix: &'a str,
    id: TokenId,
    secret: &'a [u8],
}

impl<'a> ParsedToken<'a> {
    /// Parses any well-formed token, whatever its prefix (what a scanner wants).
    ///
    /// Checks, in order: length bound, ASCII, separator, prefix syntax, body length,
    /// alphabet, checksum. The error never quotes the input.
    pub fn parse(input: &'a str) -> Result<Self, TokenFormatError> {
        let bytes = input.as_bytes();
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(TokenFormatError::TooLong { max: MAX_TOKEN_LEN });
        }
        // Fast path: the body has a fixed length, so the separator's place is known.
        let sep = match bytes.len().checked_sub(BODY_LEN + 1) {
            Some(sep) if bytes[sep] == b'_' => sep,
            _ => return Err(classify(bytes)),
        };
        if !is_valid_prefix(&bytes[..sep]) {
            return Err(classify(bytes));
        }
        Self::parse_body(input, sep)
    }

    /// The checks after the prefix, whose `_` is at `sep` and which is known to be valid.
    #[inline]
    fn parse_body(input: &'a str, sep: usize) -> Result<Self, TokenFormatError> {
        let bytes = input.as_bytes();
        let body = &bytes[sep + 1..];
        if !base62::all_valid(body) {
            return Err(if bytes.is_ascii() {
                TokenFormatError::BadCharacter {
                    position: sep + 1 + base62::first_invalid(body).unwrap_or(0),
                }
            } else {
                TokenFormatError::NonAscii
            });
        }
        let (checked, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let sum: &[u8; CHECKSUM_LEN] = sum.try_into().map_err(|_| TokenFormatError::BadChecksum)?;
        match base62::decode_6(sum) {
            Some(s) if s == u64::from(crc32fast::hash(checked)) => {}
            _ => return Err(TokenFormatError::BadChecksum),
        }
        let id = TokenId::from_chars(&body[..ID_LEN]).ok_or(TokenFormatError::BadChecksum)?;
        Ok(Self {
            // `bytes[sep]` is the ASCII `_`, so the split is on a char boundary.
            prefix: &input[..sep],
            id,
            secret: &body[ID_LEN..ID_LEN + SECRET_LEN],
        })
    }

    /// The issuer prefix.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// The public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    pub(crate) fn secret_chars(&self) -> &'a [u8] {
        self.secret
    }
}

impl fmt::Debug for ParsedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("prefix", &self.prefix)
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// The error for a token whose separator is not where the body length puts it (cold path).
#[cold]
fn classify(bytes: &[u8]) -> TokenFormatError {
    if !bytes.is_ascii() {
        return TokenFormatError::NonAscii;
    }
    let Some(sep) = bytes.iter().rposition(|&c| c == b'_') else {
        return TokenFormatError::MissingSeparator;
    };
    if !is_valid_prefix(&bytes[..sep]) {
        return TokenFormatError::BadPrefix;
    }
    TokenFormatError::BadLength { expected: BODY_LEN, found: bytes.len() - sep - 1 }
}

/// The format of one issuer's tokens: parsing also checks the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: TokenPrefix,
}

impl TokenFormat {
    /// The format of tokens carrying `prefix`.
    pub fn new(prefix: TokenPrefix) -> Self {
        Self { prefix }
    }

    /// The issuer prefix.
    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    /// Parses `input` and checks that it carries this format's prefix.
    #[inline]
    pub fn parse<'a>(&self, input: &'a str) -> Result<ParsedToken<'a>, TokenFormatError> {
        let p = self.prefix.as_str();
        let bytes = input.as_bytes();
        // Fast path: exactly `<our prefix>_<66 characters>`; our prefix was validated once.
        if bytes.len() == p.len() + 1 + BODY_LEN && bytes.starts_with(p.as_bytes()) && bytes[p.len()] == b'_'
        {
            return ParsedToken::parse_body(input, p.len());
        }
        let parsed = ParsedToken::parse(input)?;
        if parsed.prefix != p {
            return Err(TokenFormatError::WrongPrefix { expected: self.prefix.clone() });
        }
        Ok(parsed)
    }

    /// Generates a fresh token from the OS CSPRNG: its id and its full text (in a secret).
    pub(crate) fn generate(&self) -> Result<(TokenId, SecretString), crate::error::RandomnessUnavailable> {
        let mut random = [0u8; ID_LEN + SECRET_LEN];
        base62::fill_random(&mut rand::rngs::SysRng, &mut random)
            .map_err(|_| crate::error::RandomnessUnavailable)?;
        let text = assemble(self.prefix.as_str(), &random);
        random.zeroize();
        let id = TokenId::from_chars(&text.as_bytes()[self.prefix.as_str().len() + 1..][..ID_LEN])
            .ok_or(crate::error::RandomnessUnavailable)?;
        Ok((id, SecretString::from(text)))
    }
}

/// Builds `prefix_` + `random` + checksum into a string allocated once at its final size, so no
/// copy of the secret is left behind by a reallocation.
pub(crate) fn assemble(prefix: &str, random: &[u8; ID_LEN + SECRET_LEN]) -> String {
    let mut text = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    text.push_str(prefix);
    text.push('_');
    for &c in random {
        text.push(char::from(c));
    }
    let mut sum = [0u8; CHECKSUM_LEN];
    // A u32 always fits in six base62 digits (62^6 > 2^32).
    let _ = base62::encode_fixed(u128::from(crc32fast::hash(text.as_bytes())), &mut sum);
    for c in sum {
        text.push(char::from(c));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn format() -> TokenFormat {
        TokenFormat::new(TokenPrefix::new("acme_prod").expect("prefix"))
    }

    #[test]
    fn generated_tokens_parse_back() {
        let f = format();
        for _ in 0..100 {
            let (id, text) = f.generate().expect("generate");
            let parsed = f.parse(text.expose_secret()).expect("parse");
            assert_eq!(parsed.id(), id);
            assert_eq!(parsed.prefix(), "acme_prod");
            assert_eq!(text.expose_secret().len(), "acme_prod_".len() + BODY_LEN);
        }
    }

    #[test]
    fn prefix_rules() {
        for good in ["a", "acme", "acme_prod", "x9_y8_z7", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert!(TokenPrefix::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "9a",
            "_a",
            "a_",
            "a__b",
            "Acme",
            "acme-prod",
            "acme.prod",
            "é",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            assert!(TokenPrefix::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let f = format();
        let (_, text) = f.generate().expect("generate");
        let good = text.expose_secret().to_owned();
        let mut caught = 0;
        for i in 0..good.len() {
            for c in base62::ALPHABET.iter().chain(b"_-.") {
                let mut b = good.clone().into_bytes();
                if b[i] == *c {
                    continue;
                }
                b[i] = *c;
                let s = String::from_utf8(b).expect("ascii");
                assert!(f.parse(&s).is_err(), "change at {i} to {} accepted", *c as char);
                caught += 1;
            }
        }
        assert!(caught > 4000);
    }

    #[test]
    fn errors_never_quote_the_input() {
        let planted = "acme_prod_SECRETSECRETSECRETSECRET";
        let err = ParsedToken::parse(planted).expect_err("too short");
        assert!(!format!("{err} {err:?}").contains("SECRET"));
        let err = format()
            .parse("other_SECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRETSE")
            .expect_err("bad");
        assert!(!format!("{err} {err:?}").contains("SECRET"));
    }

    #[test]
    fn token_id_text_round_trip() {
        let id = TokenId::from_u128(123_456_789).expect("in range");
        assert_eq!(id.to_string().len(), ID_LEN);
        assert_eq!(id.to_string().parse::<TokenId>().expect("parse"), id);
        assert!(TokenId::from_u128(u128::MAX).is_none());
        assert!("short".parse::<TokenId>().is_err());
        assert!("0000000000000000-".parse::<TokenId>().is_err());
    }
}
