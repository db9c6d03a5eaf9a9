//! Secret versions and labels, KEK bookkeeping and metadata compare-and-swap, on the backend alone.

use super::t0;
use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::StoreError;
use crate::model::{Label, LabelChange, SecretName, SecretVersion};

fn sealed_version(name: &SecretName, version: u64, kek: &str) -> SecretVersion {
    SecretVersion {
        name: name.clone(),
        version,
        kek_id: kek.into(),
        wrapped_key: Sealed(vec![version as u8; 60]),
        ciphertext: Sealed(vec![7; 40]),
        created_at: t0(),
    }
}

/// Versions are dense from 1; labels move all-or-nothing by compare-and-swap.
pub async fn versions_and_labels(b: &dyn Backend) {
    let name = SecretName::new("svc/api-key").expect("name");
    assert_eq!(b.latest_version(&name).await.expect("latest"), None);
    assert!(matches!(b.insert_version(&sealed_version(&name, 2, "k")).await, Err(StoreError::Conflict(_))));
    b.insert_version(&sealed_version(&name, 1, "k")).await.expect("v1");
    assert!(matches!(b.insert_version(&sealed_version(&name, 1, "k")).await, Err(StoreError::Conflict(_))));
    b.insert_version(&sealed_version(&name, 2, "k")).await.expect("v2");
    assert_eq!(b.latest_version(&name).await.expect("latest"), Some(2));
    assert_eq!(b.version(&name, 1).await.expect("read"), Some(sealed_version(&name, 1, "k")));
    let other = SecretName::new("svc/other").expect("name");
    assert_eq!(b.latest_version(&other).await.expect("latest"), None, "names are separate");
    let before = SecretName::new("svc/a-first").expect("name");
    b.insert_version(&sealed_version(&before, 1, "k")).await.expect("v1 of another");
    let names: Vec<(String, u64)> =
        b.secret_names().await.expect("names").into_iter().map(|(n, v)| (n.as_str().to_owned(), v)).collect();
    let ours: Vec<&(String, u64)> = names.iter().filter(|(n, _)| n.starts_with("svc/")).collect();
    assert_eq!(
        ours,
        [&("svc/a-first".to_owned(), 1), &("svc/api-key".to_owned(), 2)],
        "every secret once, with its latest version, in name order"
    );

    let set = |label, expect, set| LabelChange { label, expect, set };
    b.update_labels(&name, &[set(Label::Current, None, Some(1))]).await.expect("current = 1");
    // Promote 2: pending must be nowhere, so this all-or-nothing change must fail entirely.
    let bad = [set(Label::Current, Some(1), Some(2)), set(Label::Pending, Some(2), None)];
    assert!(matches!(b.update_labels(&name, &bad).await, Err(StoreError::Conflict(_))));
    assert_eq!(
        b.labels(&name).await.expect("labels").get(&Label::Current),
        Some(&1),
        "nothing was half-applied"
    );
    b.update_labels(&name, &[set(Label::Pending, None, Some(2))]).await.expect("pending = 2");
    let promote = [
        set(Label::Current, Some(1), Some(2)),
        set(Label::Previous, None, Some(1)),
        set(Label::Pending, Some(2), None),
    ];
    b.update_labels(&name, &promote).await.expect("promote");
    let labels = b.labels(&name).await.expect("labels");
    assert_eq!(
        (labels.get(&Label::Current), labels.get(&Label::Previous), labels.get(&Label::Pending)),
        (Some(&2), Some(&1), None)
    );
    assert!(
        matches!(b.update_labels(&name, &promote).await, Err(StoreError::Conflict(_))),
        "a retried promote is refused"
    );
    assert!(
        matches!(
            b.update_labels(&name, &[set(Label::Pending, None, Some(9))]).await,
            Err(StoreError::Conflict(_))
        ),
        "a label may not point at a missing version"
    );
}

/// KEK bookkeeping and metadata compare-and-swap.
pub async fn rewrap_and_meta(b: &dyn Backend) {
    let name = SecretName::new("svc/k").expect("name");
    for v in 1..=3 {
        b.insert_version(&sealed_version(&name, v, if v == 2 { "new" } else { "old" }))
            .await
            .expect("insert");
    }
    let mut todo = b.versions_not_under("new", 10).await.expect("list");
    todo.sort();
    assert_eq!(todo, vec![(name.clone(), 1), (name.clone(), 3)]);
    assert_eq!(b.versions_not_under("new", 1).await.expect("list").len(), 1, "limit respected");
    let w = Sealed(vec![9; 60]);
    b.rewrap_version(&name, 1, "old", "new", &w).await.expect("rewrap");
    assert!(matches!(b.rewrap_version(&name, 1, "old", "new", &w).await, Err(StoreError::Conflict(_))));
    let v1 = b.version(&name, 1).await.expect("read").expect("there");
    assert_eq!((v1.kek_id.as_str(), &v1.wrapped_key, &v1.ciphertext), ("new", &w, &Sealed(vec![7; 40])));

    assert_eq!(b.meta("m").await.expect("meta"), None);
    b.set_meta("m", None, b"one").await.expect("create");
    assert!(matches!(b.set_meta("m", None, b"two").await, Err(StoreError::Conflict(_))));
    b.set_meta("m", Some(b"one"), b"two").await.expect("swap");
    assert_eq!(b.meta("m").await.expect("meta").as_deref(), Some(&b"two"[..]));
}
