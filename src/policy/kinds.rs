//! The kinds a policy file may declare — rotation targets (`target = { kind = "…", … }`) and
//! deploy destinations (`deploy = [{ kind = "…", … }]`) — and the declarations read into them:
//! the registry reads a table into the declaration type its `kind` names, and knows no kind's
//! fields.
//!
//! A target kind is a type implementing [`TargetDeclaration`], a destination kind one implementing
//! [`DestinationDeclaration`] (its settings, check and build). The built-in ones are in
//! [`token_rotate::declare`], which lists them, one line per file, and hands them over
//! ([`builtin_kinds`]); a tool author's own kind is registered at run time with [`register_kind`]
//! or [`register_destination_kind`]. The table is read into the kind's type once, when the file
//! is read (its durations parsed then); [`TargetSpec`] and [`DestinationSpec`] hold it,
//! type-erased, and write it back in the kind's field order, `kind` first.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, SerializeMap as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use token_core::chrono::TimeDelta;
use token_rotate::declare::{
    BuildContext, CheckContext, DeclareError, DestinationDeclaration, Duration, DurationError, Kinds,
    TargetDeclaration, builtin_kinds,
};
use token_rotate::{Destination, RotationTarget};

use super::error::PolicyFileError;
use crate::error::{Error, Result};

/// Registers a rotation target kind of your own, so a policy file may declare
/// `target = { kind = "<S::KIND>", … }` in this process (the built-in kinds are always known).
/// Registering the same type again does nothing; a `KIND` already taken by another type (a
/// built-in kind or another registration) is an error, so a declaration can never be read into a
/// type it was not written for. The repository's `docs/extending.md` walks through a whole kind.
pub fn register_kind<S: TargetDeclaration>() -> std::result::Result<(), PolicyFileError> {
    TARGETS.register(target_kind::<S>())
}

/// Registers a deploy destination kind of your own, so a policy file may declare
/// `deploy = [{ kind = "<S::KIND>", … }]` in this process; as [`register_kind`] does for targets.
pub fn register_destination_kind<S: DestinationDeclaration>() -> std::result::Result<(), PolicyFileError> {
    DESTINATIONS.register(destination_kind::<S>())
}

/// A registered kind: its name, its declaration's type, and a reader of its tables (`kind`
/// removed) into that type, type-erased as `R`.
struct Kind<R: ?Sized> {
    name: &'static str,
    type_id: TypeId,
    read: fn(toml::Table) -> std::result::Result<Arc<R>, String>,
}

impl<R: ?Sized> Clone for Kind<R> {
    fn clone(&self) -> Self {
        Self { name: self.name, type_id: self.type_id, read: self.read }
    }
}

fn read_table<S: DeserializeOwned>(table: toml::Table) -> std::result::Result<S, String> {
    toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().trim().to_owned())
}

fn target_kind<S: TargetDeclaration>() -> Kind<dyn DeclaredTarget> {
    Kind {
        name: S::KIND,
        type_id: TypeId::of::<S>(),
        read: |t| {
            let decl: Arc<dyn DeclaredTarget> = Arc::new(Decl { kind: S::KIND, spec: read_table::<S>(t)? });
            Ok(decl)
        },
    }
}

fn destination_kind<S: DestinationDeclaration>() -> Kind<dyn DeclaredDestination> {
    Kind {
        name: S::KIND,
        type_id: TypeId::of::<S>(),
        read: |t| {
            let decl: Arc<dyn DeclaredDestination> =
                Arc::new(Decl { kind: S::KIND, spec: read_table::<S>(t)? });
            Ok(decl)
        },
    }
}

/// The kinds `token_rotate::declare` lists, in its order (an unknown kind's error lists them so).
struct Builtin {
    targets: Vec<Kind<dyn DeclaredTarget>>,
    destinations: Vec<Kind<dyn DeclaredDestination>>,
}

impl Kinds for Builtin {
    fn target<S: TargetDeclaration>(&mut self) {
        self.targets.push(target_kind::<S>());
    }
    fn destination<S: DestinationDeclaration>(&mut self) {
        self.destinations.push(destination_kind::<S>());
    }
}

static BUILTIN: LazyLock<Builtin> = LazyLock::new(|| {
    let mut b = Builtin { targets: Vec::new(), destinations: Vec::new() };
    builtin_kinds(&mut b);
    b
});

/// The rotation target kinds.
static TARGETS: Registry<dyn DeclaredTarget> = Registry::new("target", || &BUILTIN.targets);
/// The deploy destination kinds.
static DESTINATIONS: Registry<dyn DeclaredDestination> =
    Registry::new("destination", || &BUILTIN.destinations);

/// The kinds of one family (targets or destinations): the built-in ones, then those registered
/// at run time.
struct Registry<R: ?Sized + 'static> {
    /// `target` or `destination`, for messages.
    noun: &'static str,
    builtin: fn() -> &'static [Kind<R>],
    registered: RwLock<Vec<Kind<R>>>,
}

impl<R: ?Sized + 'static> Registry<R> {
    const fn new(noun: &'static str, builtin: fn() -> &'static [Kind<R>]) -> Self {
        Self { noun, builtin, registered: RwLock::new(Vec::new()) }
    }

    fn register(&self, kind: Kind<R>) -> std::result::Result<(), PolicyFileError> {
        let (noun, name) = (self.noun, kind.name);
        if (self.builtin)().iter().any(|k| k.name == name) {
            return Err(PolicyFileError::new(format!("{noun} kind `{name}` is built in")));
        }
        let mut registered = self.registered.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match registered.iter().find(|k| k.name == name) {
            Some(k) if k.type_id == kind.type_id => Ok(()),
            Some(_) => Err(PolicyFileError::new(format!(
                "{noun} kind `{name}` is already registered by another type"
            ))),
            None => {
                registered.push(kind);
                Ok(())
            }
        }
    }

    /// Reads a table into the declaration its `kind` names.
    fn read<'de, D: Deserializer<'de>>(&self, d: D) -> std::result::Result<Arc<R>, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let name = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(D::Error::custom("kind: expected a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let registered = self.registered.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let kinds: Vec<&Kind<R>> = (self.builtin)().iter().chain(registered.iter()).collect();
        let Some(kind) = kinds.iter().find(|k| k.name == name) else {
            // As serde words it for an enum's variants.
            let names: Vec<String> = kinds.iter().map(|k| format!("`{}`", k.name)).collect();
            return Err(D::Error::custom(format!(
                "unknown variant `{name}`, expected one of {}",
                names.join(", ")
            )));
        };
        (kind.read)(table).map_err(D::Error::custom)
    }
}

/// A declaration of some kind, type-erased: what targets and destinations have alike.
trait Declared: fmt::Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn to_table(&self) -> std::result::Result<toml::Table, String>;
    fn as_any(&self) -> &dyn Any;
}

type BuiltTarget<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn RotationTarget>>> + Send + 'a>>;
type BuiltDestination<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn Destination>>> + Send + 'a>>;

/// A target declaration, type-erased.
trait DeclaredTarget: Declared {
    fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError>;
    fn lifetime(&self) -> std::result::Result<TimeDelta, DurationError>;
    fn deletion_grace(&self) -> Option<Option<&Duration>>;
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> BuiltTarget<'a>;
}

/// A destination declaration, type-erased.
trait DeclaredDestination: Declared {
    fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError>;
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> BuiltDestination<'a>;
}

/// A declaration of kind `kind`.
#[derive(Debug)]
struct Decl<S> {
    kind: &'static str,
    spec: S,
}

impl<S: Serialize + fmt::Debug + Send + Sync + 'static> Declared for Decl<S> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn to_table(&self) -> std::result::Result<toml::Table, String> {
        match toml::Value::try_from(&self.spec) {
            Ok(toml::Value::Table(t)) => Ok(t),
            Ok(_) => Err(format!("{}: not a table", self.kind)),
            Err(e) => Err(e.to_string()),
        }
    }
    fn as_any(&self) -> &dyn Any {
        &self.spec
    }
}

impl<S: TargetDeclaration> DeclaredTarget for Decl<S> {
    fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
        self.spec.check(ctx)
    }
    fn lifetime(&self) -> std::result::Result<TimeDelta, DurationError> {
        self.spec.lifetime()
    }
    fn deletion_grace(&self) -> Option<Option<&Duration>> {
        self.spec.deletion_grace()
    }
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> BuiltTarget<'a> {
        self.spec.build(ctx)
    }
}

impl<S: DestinationDeclaration> DeclaredDestination for Decl<S> {
    fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
        self.spec.check(ctx)
    }
    fn build<'a>(&'a self, ctx: &'a dyn BuildContext<Error = Error>) -> BuiltDestination<'a> {
        self.spec.build(ctx)
    }
}

/// `kind` first, then the declaration's fields in its own order.
fn serialize<D: Declared + ?Sized, S: Serializer>(decl: &D, s: S) -> std::result::Result<S::Ok, S::Error> {
    let table = decl.to_table().map_err(S::Error::custom)?;
    let mut map = s.serialize_map(Some(table.len() + 1))?;
    map.serialize_entry("kind", decl.kind())?;
    for (k, v) in &table {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Same kind, same settings.
fn same<D: Declared + ?Sized>(a: &D, b: &D) -> bool {
    a.kind() == b.kind() && a.to_table() == b.to_table()
}

/// A rotation target's kind and settings: the `target` table of a credential, read into the
/// declaration its `kind` names (see [`token_rotate::declare`] for the kinds and their fields).
#[derive(Clone)]
pub struct TargetSpec(Arc<dyn DeclaredTarget>);

impl TargetSpec {
    /// A target of kind `S` with these settings.
    pub fn new<S: TargetDeclaration>(settings: S) -> Self {
        Self(Arc::new(Decl { kind: S::KIND, spec: settings }))
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
    pub(crate) fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
        self.0.check(ctx)
    }

    /// How long one credential lives.
    pub(crate) fn lifetime(&self) -> std::result::Result<TimeDelta, DurationError> {
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

/// A place a credential is deployed to (see [`token_rotate::Destination`]): one table of a
/// credential's `deploy`, read into the declaration its `kind` names (see
/// [`token_rotate::declare`] for the kinds and their fields).
#[derive(Clone)]
pub struct DestinationSpec(Arc<dyn DeclaredDestination>);

impl DestinationSpec {
    /// A destination of kind `S` with these settings.
    pub fn new<S: DestinationDeclaration>(settings: S) -> Self {
        Self(Arc::new(Decl { kind: S::KIND, spec: settings }))
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        self.0.kind()
    }

    /// Its settings, if it is of kind `S`.
    pub fn settings<S: DestinationDeclaration>(&self) -> Option<&S> {
        self.0.as_any().downcast_ref()
    }

    /// Checks what parsing could not (see [`DestinationDeclaration::check`]).
    pub(crate) fn check(&self, ctx: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
        self.0.check(ctx)
    }

    /// The destination, in the deployment `ctx` describes.
    pub(crate) async fn build(&self, ctx: &dyn BuildContext<Error = Error>) -> Result<Arc<dyn Destination>> {
        self.0.build(ctx).await
    }
}

macro_rules! spec_impls {
    ($spec:ident, $registry:ident) => {
        impl fmt::Debug for $spec {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($spec)).field(&self.0).finish()
            }
        }

        impl PartialEq for $spec {
            fn eq(&self, other: &Self) -> bool {
                same(&*self.0, &*other.0)
            }
        }

        impl Eq for $spec {}

        impl Serialize for $spec {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                serialize(&*self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $spec {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                $registry.read(d).map(Self)
            }
        }
    };
}

spec_impls!(TargetSpec, TARGETS);
spec_impls!(DestinationSpec, DESTINATIONS);

#[cfg(test)]
mod registration_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A kind of a tool author's own, under a name of its own.
    macro_rules! kind {
        ($ty:ident, $name:literal) => {
            #[derive(Debug, Serialize, Deserialize)]
            struct $ty {
                ttl: Duration,
            }
            #[token_rotate::declare::async_trait]
            impl TargetDeclaration for $ty {
                const KIND: &'static str = $name;
                fn check(&self, _: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
                    Ok(())
                }
                fn lifetime(&self) -> std::result::Result<TimeDelta, DurationError> {
                    self.ttl.get()
                }
                async fn build<C: BuildContext + ?Sized>(
                    &self,
                    ctx: &C,
                ) -> std::result::Result<Arc<dyn RotationTarget>, C::Error> {
                    Err(ctx.config("not built in this test".into()))
                }
            }
        };
    }
    kind!(Mine, "registration-test-mine");
    kind!(Impostor, "registration-test-mine");
    kind!(Shadow, "tokenward-token");

    /// A destination kind of a tool author's own.
    macro_rules! destination {
        ($ty:ident, $name:literal) => {
            #[derive(Debug, Serialize, Deserialize)]
            struct $ty {
                path: String,
            }
            #[token_rotate::declare::async_trait]
            impl DestinationDeclaration for $ty {
                const KIND: &'static str = $name;
                fn check(&self, _: &dyn CheckContext) -> std::result::Result<(), DeclareError> {
                    Ok(())
                }
                async fn build<C: BuildContext + ?Sized>(
                    &self,
                    ctx: &C,
                ) -> std::result::Result<Arc<dyn Destination>, C::Error> {
                    Err(ctx.config("not built in this test".into()))
                }
            }
        };
    }
    destination!(MyPlace, "registration-test-place");
    destination!(OtherPlace, "registration-test-place");
    destination!(ShadowPlace, "openbao-kv");

    fn read<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        T::deserialize(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_registered_kind_is_read_and_nothing_can_take_its_name_or_a_built_in_one() {
        let text = "kind = \"registration-test-mine\"\nttl = \"1h\"\n";
        assert!(read::<TargetSpec>(text).unwrap_err().contains("unknown variant `registration-test-mine`"));
        register_kind::<Mine>().unwrap();
        register_kind::<Mine>().unwrap(); // again: nothing changes
        let spec: TargetSpec = read(text).unwrap();
        assert_eq!(spec.kind(), "registration-test-mine");
        assert_eq!(spec.settings::<Mine>().unwrap().ttl.get().unwrap(), TimeDelta::hours(1));
        assert!(register_kind::<Impostor>().unwrap_err().to_string().contains("another type"));
        assert!(register_kind::<Shadow>().unwrap_err().to_string().contains("built in"));
        // The built-in kind still reads into its own type.
        let ours = read::<TargetSpec>(
            "kind = \"tokenward-token\"\nprincipal = \"p\"\npurpose = \"x\"\nscopes = []\nttl = \"1h\"\n",
        );
        assert!(ours.unwrap().settings::<token_rotate::declare::TokenwardTokenSpec>().is_some());
        // A target kind is not a destination kind.
        assert!(read::<DestinationSpec>(text).unwrap_err().contains("unknown variant"));
    }

    #[test]
    fn a_registered_destination_kind_is_read_and_written_back() {
        let text = "kind = \"registration-test-place\"\npath = \"/run/x\"\n";
        let e = read::<DestinationSpec>(text).unwrap_err();
        assert!(e.contains("expected one of `openbao-kv`, `aws-secrets-manager`"), "{e}");
        register_destination_kind::<MyPlace>().unwrap();
        register_destination_kind::<MyPlace>().unwrap();
        let spec: DestinationSpec = read(text).unwrap();
        assert_eq!(
            (spec.kind(), spec.settings::<MyPlace>().unwrap().path.as_str()),
            ("registration-test-place", "/run/x")
        );
        assert_eq!(toml::to_string(&spec).unwrap(), text);
        assert!(register_destination_kind::<OtherPlace>().unwrap_err().to_string().contains("another type"));
        // A destination's name is taken among destinations only (`openbao-kv` is both built in).
        assert!(register_destination_kind::<ShadowPlace>().unwrap_err().to_string().contains("built in"));
        assert!(read::<DestinationSpec>("path = \"/run/x\"\n").unwrap_err().contains("missing field `kind`"));
    }
}
