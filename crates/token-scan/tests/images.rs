//! Container images built in the test from tar layers: an OCI layout (directory and tar) with a
//! gzip and a zstd layer, and a `docker save` archive. A secret that a later layer deletes with a
//! whiteout is still found in its lower layer, marked as deleted; corrupt layers are reported.

#![cfg(feature = "images")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use token_scan::*;

fn tokens() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/github-tokens.json")).unwrap();
    v["valid"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

/// A layer tar holding `files` (path, contents).
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Writes an OCI layout into `dir` with the given layer blobs; returns nothing.
fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = digest(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let config = put(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(l), "size": l.len()}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": layer_descs
    })
    .to_string();
    let m = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}").unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "app:1.0"}}]})
        .to_string(),
    )
    .unwrap();
}

/// The directory `dir` as a tar file at `out`.
fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn a_secret_deleted_by_a_whiteout_is_found_in_its_lower_layer() {
    let t = tokens();
    let base =
        layer(&[("etc/os-release", b"NAME=test\n"), ("app/.env", format!("TOKEN={}\n", t[0]).as_bytes())]);
    let upper = layer(&[("app/.wh..env", b""), ("app/main.py", format!("KEY = '{}'\n", t[1]).as_bytes())]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    oci_layout(&layout, &[gzip(&base), zstd(&upper)]);
    let scanner = Scanner::new().unwrap();
    for source in ["dir", "tar"] {
        let report = if source == "dir" {
            scanner.scan_image(&layout, &ImageOptions::default()).unwrap()
        } else {
            let archive = dir.path().join("image.tar");
            tar_dir(&layout, &archive);
            scanner.scan_image(&archive, &ImageOptions::default()).unwrap()
        };
        assert_eq!(report.findings.len(), 2, "{source}: {:?} {:?}", report.findings, report.skipped);
        let env = report.findings.iter().find(|f| f.location.path() == "app/.env").unwrap();
        let Location::Image { image, layer_index, deleted_in_layer, .. } = &env.location else { panic!() };
        assert_eq!((image.as_str(), *layer_index, *deleted_in_layer), ("app:1.0", 0, Some(1)), "{source}");
        assert!(env.location.to_string().ends_with("(deleted in layer 1)"));
        let py = report.findings.iter().find(|f| f.location.path() == "app/main.py").unwrap();
        assert!(matches!(py.location, Location::Image { layer_index: 1, deleted_in_layer: None, .. }));
    }
}

#[test]
fn docker_save_archives_are_read_and_corrupt_layers_reported() {
    let t = tokens();
    let good = layer(&[("srv/config.yml", format!("token: {}\n", t[2]).as_bytes())]);
    let mut corrupt = gzip(&layer(&[("x", &[b'a'; 5000])]));
    corrupt.truncate(corrupt.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("save");
    std::fs::create_dir_all(save.join("l1")).unwrap();
    std::fs::create_dir_all(save.join("l2")).unwrap();
    std::fs::write(save.join("l1/layer.tar"), &good).unwrap();
    std::fs::write(save.join("l2/layer.tar"), &corrupt).unwrap();
    std::fs::write(
        save.join("manifest.json"),
        r#"[{"Config":"cfg.json","RepoTags":["svc:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
    )
    .unwrap();
    std::fs::write(save.join("cfg.json"), "{}").unwrap();
    let archive = dir.path().join("svc.tar");
    tar_dir(&save, &archive);
    let report = Scanner::new().unwrap().scan_image(&archive, &ImageOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 1);
    assert!(report.findings[0].location.to_string().starts_with("svc:latest[layer 0]:srv/config.yml:1:"));
    assert!(
        report.skipped.iter().any(|s| s.what.contains("l2/layer.tar") && s.reason.contains("corrupt")),
        "{:?}",
        report.skipped
    );

    // Not an image at all, and a truncated outer archive: typed errors, no panic.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    assert!(matches!(
        Scanner::new().unwrap().scan_image(&junk, &ImageOptions::default()),
        Err(ScanError::Image(_))
    ));
    let bytes = std::fs::read(&archive).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..700]).unwrap();
    assert!(Scanner::new().unwrap().scan_image(&cut, &ImageOptions::default()).is_err());
}
