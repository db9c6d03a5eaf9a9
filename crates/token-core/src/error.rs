//! Typed errors. None of them quotes a presented token or any other secret input.

use crate::format::TokenPrefix;

/// Why a presented token is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// Longer than any token can be; refused before it is read.
    #[error("token is longer than the {max} characters any token has")]
    TooLong {
        /// The longest a token can be.
        max: usize,
    },
    /// Holds a byte outside ASCII.
    #[error("token holds non-ASCII characters")]
    NonAscii,
    /// Has no `_` between prefix and body.
    #[error("token has no `_` separating prefix and body")]
    MissingSeparator,
    /// The prefix is not of the form `[a-z][a-z0-9_]*`, 1 to 32 characters.
    #[error(
        "token prefix is malformed: expected a lowercase letter, then lowercase letters, digits and single underscores, at most 32"
    )]
    BadPrefix,
    /// Well formed, but issued by someone else.
    #[error("token does not carry the expected prefix `{expected}`")]
    WrongPrefix {
        /// The prefix this format expects.
        expected: TokenPrefix,
    },
    /// The body has the wrong number of characters.
    #[error("token body has {found} characters; expected {expected}")]
    BadLength {
        /// Characters a body has.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// A token id of the wrong length.
    #[error("token id has {found} characters; expected 17")]
    BadIdLength {
        /// Characters found.
        found: usize,
    },
    /// A character outside base62 at this byte offset.
    #[error("token has a character outside [0-9A-Za-z] at offset {position}")]
    BadCharacter {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// The checksum does not match: a typo, a truncation, or not a token at all.
    #[error("token checksum does not match")]
    BadChecksum,
}

/// The operating system's random number generator failed: nothing secret can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator is unavailable")]
#[non_exhaustive]
pub struct RandomnessUnavailable;

/// Why a scope or request string is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Longer than the limit.
    #[error("scope is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Not of the form `service:resource:action`.
    #[error("scope must have three parts, `service:resource:action`; found {found}")]
    WrongShape {
        /// Colon-separated parts found.
        found: usize,
    },
    /// A part is empty.
    #[error("scope {part} is empty")]
    Empty {
        /// Which part.
        part: &'static str,
    },
    /// A forbidden character in a part.
    #[error("scope {part} has a character outside its alphabet at byte {position}")]
    BadCharacter {
        /// Which part.
        part: &'static str,
        /// Byte offset within the scope string.
        position: usize,
    },
    /// A wildcard where none may stand.
    #[error("wildcard `{wildcard}` not allowed here: {why}")]
    MisplacedWildcard {
        /// The wildcard.
        wildcard: &'static str,
        /// Where wildcards may stand.
        why: &'static str,
    },
    /// A `.` or `..` path segment, or an empty one (`a//b`).
    #[error("resource path segment {index} is empty, `.` or `..`")]
    BadSegment {
        /// Zero-based segment index.
        index: usize,
    },
    /// Too many path segments.
    #[error("resource path has more than {max} segments")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A request names something concrete; it may not hold wildcards.
    #[error("a request may not hold wildcards")]
    WildcardInRequest,
    /// Too many scopes in one set.
    #[error("scope set has more than {max} scopes")]
    TooMany {
        /// The limit.
        max: usize,
    },
}
