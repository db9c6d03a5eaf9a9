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

/// Scans `image` on a thread of its own: a scan that hangs (a FIFO read) fails the test instead
/// of hanging it.
fn scan_within(image: &Path, options: ImageOptions) -> Result<Report, ScanError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let image = image.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(Scanner::new().unwrap().scan_image(&image, &options));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the image scan hung")
}

/// A `docker save` directory whose manifest names `layer` (with a good layer first).
fn save_dir(dir: &Path, layer: &str) {
    let t = tokens();
    std::fs::create_dir_all(dir.join("l1")).unwrap();
    std::fs::write(
        dir.join("l1/layer.tar"),
        self::layer(&[("srv/a.yml", format!("t: {}\n", t[2]).as_bytes())]),
    )
    .unwrap();
    let manifest =
        serde_json::json!([{"Config": "cfg.json", "RepoTags": ["svc:1"], "Layers": ["l1/layer.tar", layer]}]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A layout directory is read only inside itself: a manifest naming an absolute path, a `..`
/// path, a symlink leading out or a FIFO is a typed error (nothing outside read, nothing
/// blocking); a symlink that stays inside is followed; a FIFO among the blobs is passed over.
#[cfg(unix)]
#[test]
fn an_image_directory_is_read_only_inside_itself() {
    let t = tokens();
    let dir = tempfile::tempdir().unwrap();
    // Outside the image: a layer-shaped file holding a secret (say, the host's files).
    let outside = dir.path().join("host");
    std::fs::create_dir_all(&outside).unwrap();
    let host_layer = outside.join("passwd.tar");
    std::fs::write(&host_layer, layer(&[("etc/passwd", format!("root:{}\n", t[0]).as_bytes())])).unwrap();

    type Make<'a> = Box<dyn Fn(&Path) -> String + 'a>;
    let cases: Vec<(&str, Make<'_>)> = vec![
        ("absolute", Box::new(|_| host_layer.display().to_string())),
        ("dot-dot", Box::new(|_| "../host/passwd.tar".to_owned())),
        (
            "symlink out",
            Box::new(|image| {
                std::os::unix::fs::symlink(&host_layer, image.join("l2.tar")).unwrap();
                "l2.tar".to_owned()
            }),
        ),
        (
            "fifo",
            Box::new(|image| {
                mkfifo(&image.join("l2.tar"));
                "l2.tar".to_owned()
            }),
        ),
        ("a directory", Box::new(|_| "l1".to_owned())),
    ];
    for (what, make) in &cases {
        let image = dir.path().join(format!("image-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&image).unwrap();
        let name = make(&image);
        save_dir(&image, &name);
        match scan_within(&image, ImageOptions::default()) {
            Err(ScanError::ImagePath { path, why }) => {
                assert_eq!(path, name, "{what}");
                assert!(!why.is_empty());
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    // The manifest itself a symlink out, or a FIFO: refused the same way.
    for what in ["symlink", "fifo"] {
        let image = dir.path().join(format!("manifest-{what}"));
        std::fs::create_dir_all(&image).unwrap();
        save_dir(&image, "l1/layer.tar");
        std::fs::remove_file(image.join("manifest.json")).unwrap();
        if what == "symlink" {
            let elsewhere = outside.join("manifest.json");
            std::fs::write(&elsewhere, r#"[{"Config":"c","Layers":["l1/layer.tar"]}]"#).unwrap();
            std::os::unix::fs::symlink(&elsewhere, image.join("manifest.json")).unwrap();
        } else {
            mkfifo(&image.join("manifest.json"));
        }
        let r = scan_within(&image, ImageOptions::default());
        assert!(
            matches!(&r, Err(ScanError::ImagePath { path, .. }) if path == "manifest.json"),
            "{what}: {r:?}"
        );
    }

    // A symlink that stays inside is followed; the secret outside is never reached.
    let image = dir.path().join("image-inside");
    std::fs::create_dir_all(image.join("l2")).unwrap();
    std::fs::write(image.join("l2/real.tar"), layer(&[("app/k", format!("k={}\n", t[1]).as_bytes())]))
        .unwrap();
    std::os::unix::fs::symlink("../l2/real.tar", {
        std::fs::create_dir_all(image.join("l3")).unwrap();
        image.join("l3/link.tar")
    })
    .unwrap();
    save_dir(&image, "l3/link.tar");
    let report = scan_within(&image, ImageOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 2, "{:?} {:?}", report.findings, report.skipped);

    // An OCI layout with a FIFO and a symlink out among its blobs: they are passed over.
    let layout = dir.path().join("layout");
    oci_layout(&layout, &[gzip(&layer(&[("app/.env", format!("T={}\n", t[3]).as_bytes())]))]);
    mkfifo(&layout.join("blobs/sha256/fifo"));
    std::os::unix::fs::symlink(outside.join("manifest.json"), layout.join("blobs/sha256/out")).unwrap();
    let report = scan_within(&layout, ImageOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 1, "{:?} {:?}", report.findings, report.skipped);
}

/// Pass 1 of a tar image holds its JSON documents in memory: within `max_metadata`, beyond it a
/// typed error (an archive of many small JSON-looking blobs cannot exhaust memory).
#[test]
fn an_image_archive_holds_at_most_max_metadata_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("save");
    save_dir(&save, "l1/layer.tar");
    std::fs::create_dir_all(save.join("blobs/x")).unwrap();
    for i in 0..64 {
        std::fs::write(save.join(format!("blobs/x/{i}")), format!("{{\"pad\":\"{}\"}}", "a".repeat(4096)))
            .unwrap();
    }
    let archive = dir.path().join("save.tar");
    tar_dir(&save, &archive);
    let mut small = ImageOptions::default();
    small.max_metadata = 64 << 10;
    for image in [&archive, &save] {
        let r = scan_within(image, small.clone());
        assert!(matches!(r, Err(ScanError::ImageMetadataTooLarge { limit }) if limit == 64 << 10), "{r:?}");
        let report = scan_within(image, ImageOptions::default()).unwrap();
        assert!(!report.findings.is_empty(), "{:?}", report.skipped);
    }
}
