//! A [`ScopeSet`]: the scopes a token holds, sorted, deduplicated and shared.

#![allow(clippy::wildcard_imports)]

use super::*;

/// A set of scopes, kept sorted and without duplicates. Text form: scopes separated by spaces.
///
/// Immutable and shared: cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Scope>", into = "Vec<Scope>")]
pub struct ScopeSet(Arc<Scopes>);

/// The sorted scopes, and their canonical text (kept, so that storing a set formats nothing).
#[derive(Clone)]
struct Scopes {
    list: Vec<Scope>,
    text: Box<str>,
}

// Equality and hashing are the list's: the text follows from it.
impl PartialEq for Scopes {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Scopes {}

impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.list.hash(state);
    }
}

impl std::ops::Deref for Scopes {
    type Target = Vec<Scope>;
    fn deref(&self) -> &Vec<Scope> {
        &self.list
    }
}

impl Scopes {
    fn new(list: Vec<Scope>) -> Self {
        let mut text = String::new();
        for (i, s) in list.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            let _ = fmt::Write::write_fmt(&mut text, format_args!("{s}"));
        }
        Self { list, text: text.into_boxed_str() }
    }
}

impl ScopeSet {
    /// A set from scopes; at most [`MAX_SCOPES`].
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Self, ScopeError> {
        let mut v: Vec<Scope> = scopes.into_iter().take(MAX_SCOPES + 1).collect();
        if v.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany { max: MAX_SCOPES });
        }
        v.sort();
        v.dedup();
        Ok(Self(Arc::new(Scopes::new(v))))
    }

    /// The canonical text: the scopes, sorted, separated by single spaces (what `Display`
    /// writes, and what [`ScopeSet::parse`] reads back to an equal set).
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Parses scopes separated by whitespace.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.len() > MAX_SCOPE_LEN * MAX_SCOPES {
            return Err(ScopeError::TooLong { max: MAX_SCOPE_LEN * MAX_SCOPES });
        }
        let mut scopes = Vec::new();
        for part in s.split_ascii_whitespace() {
            if scopes.len() == MAX_SCOPES {
                return Err(ScopeError::TooMany { max: MAX_SCOPES });
            }
            scopes.push(Scope::parse(part)?);
        }
        Self::new(scopes)
    }

    /// Whether any scope allows `request`.
    #[must_use]
    #[inline]
    pub fn allows(&self, request: &Request) -> bool {
        self.0.iter().any(|s| s.allows(request))
    }

    /// Whether every scope here lies within some scope of `other`: a token or grant with this set
    /// may do nothing that `other` may not (attenuation). Sound, property-tested.
    #[must_use]
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|a| other.0.iter().any(|b| a.is_subset(b)))
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty (allows nothing).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for ScopeSet {
    fn default() -> Self {
        Self(Arc::new(Scopes::new(Vec::new())))
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet[{self}]")
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<Vec<Scope>> for ScopeSet {
    type Error = ScopeError;
    fn try_from(v: Vec<Scope>) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<ScopeSet> for Vec<Scope> {
    fn from(s: ScopeSet) -> Vec<Scope> {
        s.0.list.clone()
    }
}
