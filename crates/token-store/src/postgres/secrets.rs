//! Sealed secret versions, their labels (under a per-secret advisory lock), KEK re-wraps, and
//! metadata in PostgreSQL.

use deadpool_postgres::Object;
use tokio_postgres::GenericClient;

use super::pg;
use crate::envelope::Sealed;
use crate::error::{Result, StoreError};
use crate::model::{
    Label, LabelChange, Labels, SecretName, SecretVersion, apply_label_changes, check_next_version,
};
use crate::sql::{self, from_ms, ms, version_i64, version_u64};

fn bad(e: tokio_postgres::Error) -> StoreError {
    sql::corrupt("secret row", None, e.to_string())
}

pub(super) async fn latest<C: GenericClient + Sync>(client: &C, name: &SecretName) -> Result<Option<u64>> {
    let r = client
        .query_one("SELECT MAX(version) FROM versions WHERE name = $1", &[&name.as_str()])
        .await
        .map_err(pg)?;
    let v: Option<i64> = r.try_get(0).map_err(bad)?;
    v.map(|v| version_u64(v, "secret version")).transpose()
}

pub(super) async fn names<C: GenericClient + Sync>(client: &C) -> Result<Vec<(SecretName, u64)>> {
    let rows = client
        .query("SELECT name, MAX(version) FROM versions GROUP BY name ORDER BY name", &[])
        .await
        .map_err(pg)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n: String = r.try_get(0).map_err(bad)?;
        let v: i64 = r.try_get(1).map_err(bad)?;
        out.push((SecretName::new(&n)?, version_u64(v, "secret version")?));
    }
    Ok(out)
}

pub(super) async fn insert_version(client: &mut Object, v: &SecretVersion) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    let name = v.name.as_str();
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", &[&name]).await.map_err(pg)?;
    check_next_version(&v.name, v.version, latest(&*tx, &v.name).await?)?;
    tx.execute(
        "INSERT INTO versions (name, version, kek_id, wrapped_key, ciphertext, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&name, &version_i64(v.version), &v.kek_id, &v.wrapped_key.0, &v.ciphertext.0, &ms(v.created_at)],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

pub(super) async fn version(
    client: &Object,
    name: &SecretName,
    version: u64,
) -> Result<Option<SecretVersion>> {
    let row = client
        .query_opt(
            "SELECT kek_id, wrapped_key, ciphertext, created_ms FROM versions WHERE name = $1 AND version = $2",
            &[&name.as_str(), &version_i64(version)],
        )
        .await
        .map_err(pg)?;
    row.map(|r| {
        Ok(SecretVersion {
            name: name.clone(),
            version,
            kek_id: r.try_get(0).map_err(bad)?,
            wrapped_key: Sealed(r.try_get(1).map_err(bad)?),
            ciphertext: Sealed(r.try_get(2).map_err(bad)?),
            created_at: from_ms(r.try_get(3).map_err(bad)?)?,
        })
    })
    .transpose()
}

pub(super) async fn read_labels<C: GenericClient + Sync>(client: &C, name: &SecretName) -> Result<Labels> {
    let rows = client
        .query("SELECT label, version FROM labels WHERE name = $1", &[&name.as_str()])
        .await
        .map_err(pg)?;
    let mut out = Labels::new();
    for r in rows {
        let l: String = r.try_get(0).map_err(bad)?;
        let v: i64 = r.try_get(1).map_err(bad)?;
        out.insert(Label::parse(&l)?, version_u64(v, "secret label")?);
    }
    Ok(out)
}

pub(super) async fn update_labels(
    client: &mut Object,
    name: &SecretName,
    changes: &[LabelChange],
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", &[&name.as_str()])
        .await
        .map_err(pg)?;
    let mut labels = read_labels(&*tx, name).await?;
    let mut existing = std::collections::BTreeSet::new();
    for v in changes.iter().filter_map(|c| c.set) {
        if tx
            .query_opt(
                "SELECT 1 FROM versions WHERE name = $1 AND version = $2",
                &[&name.as_str(), &version_i64(v)],
            )
            .await
            .map_err(pg)?
            .is_some()
        {
            existing.insert(v);
        }
    }
    apply_label_changes(name, &mut labels, changes, |v| Ok(existing.contains(&v)))?;
    tx.execute("DELETE FROM labels WHERE name = $1", &[&name.as_str()]).await.map_err(pg)?;
    for (label, v) in &labels {
        tx.execute(
            "INSERT INTO labels (name, label, version) VALUES ($1, $2, $3)",
            &[&name.as_str(), &label.as_str(), &version_i64(*v)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

pub(super) async fn versions_not_under(
    client: &Object,
    kek_id: &str,
    limit: usize,
) -> Result<Vec<(SecretName, u64)>> {
    let rows = client
        .query(
            "SELECT name, version FROM versions WHERE kek_id <> $1 ORDER BY name, version LIMIT $2",
            &[&kek_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            let n: String = r.try_get(0).map_err(bad)?;
            let v: i64 = r.try_get(1).map_err(bad)?;
            let name = SecretName::new(&n).map_err(|e| sql::corrupt("secret name", None, e.to_string()))?;
            Ok((name, version_u64(v, "secret version")?))
        })
        .collect()
}

pub(super) async fn rewrap_version(
    client: &Object,
    name: &SecretName,
    version: u64,
    expect_kek: &str,
    new_kek: &str,
    wrapped_key: &Sealed,
) -> Result<()> {
    let n = client
        .execute(
            "UPDATE versions SET kek_id = $4, wrapped_key = $5 WHERE name = $1 AND version = $2 AND kek_id = $3",
            &[&name.as_str(), &version_i64(version), &expect_kek, &new_kek, &wrapped_key.0],
        )
        .await
        .map_err(pg)?;
    if n == 1 {
        return Ok(());
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM versions WHERE name = $1 AND version = $2",
            &[&name.as_str(), &version_i64(version)],
        )
        .await
        .map_err(pg)?;
    Err(match exists {
        Some(_) => StoreError::Conflict(format!("{name} version {version} is no longer under {expect_kek}")),
        None => StoreError::NotFound(format!("{name} version {version}")),
    })
}

pub(super) async fn meta(client: &Object, key: &str) -> Result<Option<Vec<u8>>> {
    let row = client.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await.map_err(pg)?;
    row.map(|r| r.try_get(0).map_err(bad)).transpose()
}

pub(super) async fn set_meta(client: &Object, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
    let n = match expect {
        None => client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await
            .map_err(pg)?,
        Some(old) => client
            .execute("UPDATE meta SET value = $3 WHERE key = $1 AND value = $2", &[&key, &old, &value])
            .await
            .map_err(pg)?,
    };
    if n == 1 { Ok(()) } else { Err(StoreError::Conflict(format!("metadata {key} changed"))) }
}
