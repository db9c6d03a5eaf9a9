//! The rotation target kinds a policy file may declare, and the declared target: the registry
//! reads a credential's `target` table into the declaration type its `kind` names, and knows no
//! kind's fields.
//!
//! A kind is a type implementing [`TargetDeclaration`] (its settings, check and build; the
//! built-in ones are in [`token_rotate::declare`]). Registering one is one line in [`KINDS`].
//! The table is read into the kind's type once, when the file is read (its durations parsed
//! then); [`TargetSpec`] holds it, type-erased, and writes it back in the kind's field order.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use token_core::chrono::TimeDelta;
use token_rotate::RotationTarget;
use token_rotate::declare::{
    AwsIamAccessKeySpec, BuildContext, CheckContext, DeclareError, Duration, DurationError,
    OpenBaoKvTargetSpec, OpenBaoTokenSpec, TargetDeclaration, TokenwardTokenSpec,
};

use crate::error::{Error, Result};

/// The kinds, one line each, in the order an unknown kind's error lists them.
static KINDS: &[&dyn Kind] = &[
    &Register::<TokenwardTokenSpec>::KIND,
    &Register::<OpenBaoTokenSpec>::KIND,
    &Register::<AwsIamAccessKeySpec>::KIND,
    &Register::<OpenBaoKvTargetSpec>::KIND,
];

/// A registered kind: reads a `target` table (`kind` removed) into its declaration.
trait Kind: Sync {
    fn name(&self) -> &'static str;
    fn read(&self, table: toml::Table) -> Result<Arc<dyn Declared>, String>;
}

struct Register<S>(PhantomData<fn() -> S>);

impl<S> Register<S> {
    const KIND: Self = Self(PhantomData);
}

impl<S: TargetDeclaration> Kind for Register<S> {
    fn name(&self) -> &'static str {
        S::KIND
    }

    fn read(&self, table: toml::Table) -> Result<Arc<dyn Declared>, String> {
        let spec: S = toml::Value::Table(table).try_into().map_err(|e| e.message().trim().to_owned())?;
        Ok(Arc::new(Decl(spec)))
    }
}

type Built<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn RotationTarget>>> + Send + 'a>>;

/// A declaration of some kind, type-erased.
trait Declared: fmt::Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn to_table(&self) -> Result<toml::Table, String>;
    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError>;
    fn lifetime(&self) -> Result<TimeDelta, DurationError>;
    fn deletion_grace(&self) -> Option<Option<&Duration>>;
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> Built<'a>;
    fn as_any(&self) -> &dyn Any;
}

#[derive(Debug)]
struct Decl<S>(S);

impl<S: TargetDeclaration> Declared for Decl<S> {
    fn kind(&self) -> &'static str {
        S::KIND
    }
    fn to_table(&self) -> Result<toml::Table, String> {
        match toml::Value::try_from(&self.0) {
            Ok(toml::Value::Table(t)) => Ok(t),
            Ok(_) => Err(format!("{}: not a table", S::KIND)),
            Err(e) => Err(e.to_string()),
        }
    }
    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.0.check(ctx)
    }
    fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        self.0.lifetime()
    }
    fn deletion_grace(&self) -> Option<Option<&Duration>> {
        self.0.deletion_grace()
    }
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> Built<'a> {
        self.0.build(ctx)
    }
    fn as_any(&self) -> &dyn Any {
        &self.0
    }
}

/// A rotation target's kind and settings: the `target` table of a credential, read into the
/// declaration its `kind` names (see [`token_rotate::declare`] for the kinds and their fields).
#[derive(Clone)]
pub struct TargetSpec(Arc<dyn Declared>);

impl TargetSpec {
    /// A target of kind `S` with these settings.
    pub fn new<S: TargetDeclaration>(settings: S) -> Self {
        Self(Arc::new(Decl(settings)))
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        self.0.kind()
    }

    /// Its settings, if it is of kind `S`.
    pub fn settings<S: TargetDeclaration>(&self) -> Option<&S> {
        self.0.as_any().downcast_ref()
    }

    /// Checks what parsing could not (see [`TargetDeclaration::check`]).
    pub(crate) fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.0.check(ctx)
    }

    /// How long one credential lives.
    pub(crate) fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        self.0.lifetime()
    }

    /// See [`TargetDeclaration::deletion_grace`].
    pub(crate) fn deletion_grace(&self) -> Option<Option<&Duration>> {
        self.0.deletion_grace()
    }

    /// The target, in the deployment `ctx` describes.
    pub(crate) async fn build(
        &self,
        ctx: &dyn BuildContext<Error = Error>,
    ) -> Result<Arc<dyn RotationTarget>> {
        self.0.build(ctx).await
    }
}

impl fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TargetSpec").field(&self.0).finish()
    }
}

impl PartialEq for TargetSpec {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_table() == other.0.to_table()
    }
}

impl Eq for TargetSpec {}

impl Serialize for TargetSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let table = self.0.to_table().map_err(S::Error::custom)?;
        let mut map = s.serialize_map(Some(table.len() + 1))?;
        map.serialize_entry("kind", self.kind())?;
        for (k, v) in &table {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(D::Error::custom("kind: expected a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let Some(registered) = KINDS.iter().find(|k| k.name() == kind) else {
            // As serde words it for an enum's variants.
            let names: Vec<String> = KINDS.iter().map(|k| format!("`{}`", k.name())).collect();
            return Err(D::Error::custom(format!(
                "unknown variant `{kind}`, expected one of {}",
                names.join(", ")
            )));
        };
        registered.read(table).map(Self).map_err(D::Error::custom)
    }
}
