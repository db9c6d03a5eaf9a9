//! The scope, scope-set and request parsers never panic; what parses re-parses from its text form
//! to the same value, a scope always covers itself, and without wildcards a request parses exactly
//! when a scope does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::{Request, Scope, ScopeSet};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(scope) = Scope::parse(s) {
        let again = Scope::parse(&scope.to_string()).expect("display re-parses");
        assert_eq!(again, scope);
        assert!(scope.is_subset(&scope));
        // A request that is the scope's own text (when it has no wildcard) is allowed by it.
        if let Ok(r) = Request::parse(s) {
            assert!(scope.allows(&r));
        }
    }
    if let Ok(set) = ScopeSet::parse(s) {
        assert_eq!(ScopeSet::parse(&set.to_string()).expect("display re-parses"), set);
        assert!(set.is_subset(&set));
    }
    if let Ok(r) = Request::parse(s) {
        assert_eq!(Request::parse(&r.to_string()).expect("display re-parses"), r);
        assert_eq!(format!("{}:{}:{}", r.service(), r.resource(), r.action()), s);
    }
    // Without a wildcard, a request and a scope are the same grammar: the request's one-pass check
    // accepts exactly what the scope parser does.
    if !s.contains('*') {
        assert_eq!(Request::parse(s).is_ok(), Scope::parse(s).is_ok(), "{s:?}");
    }
});
