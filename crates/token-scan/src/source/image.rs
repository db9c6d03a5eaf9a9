//! Container images (feature `images`): `docker save` tarballs and OCI image layouts (a directory
//! or its tar), layers plain, gzip or zstd. Every file of every layer is scanned — a secret a later
//! layer deletes (a whiteout) is still in the image, and is reported in its lower layer, marked
//! with the layer that hides it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path};

use serde::Deserialize;

use crate::error::ScanError;
use crate::finding::{Location, Report, Skipped};
use crate::scanner::Scanner;

/// Manifests and indexes are small: larger JSON entries are not read as such.
const MAX_JSON: u64 = 4 << 20;

/// How to scan an image.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImageOptions {
    /// Files in layers larger than this are skipped and reported (default 256 MiB).
    pub max_file_size: u64,
    /// The most the image's JSON documents (manifests, indexes, configs; each at most 4 MiB)
    /// may hold in memory together while the image is read, names included (default 64 MiB).
    /// More is [`ScanError::ImageMetadataTooLarge`].
    pub max_metadata: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self { max_file_size: 256 << 20, max_metadata: 64 << 20 }
    }
}

/// The JSON documents of an image by path, within [`ImageOptions::max_metadata`].
struct Docs {
    map: HashMap<String, Vec<u8>>,
    held: u64,
    limit: u64,
}

impl Docs {
    fn new(limit: u64) -> Self {
        Self { map: HashMap::new(), held: 0, limit }
    }

    /// Keeps `r`'s bytes as `name` if they look like JSON (`{` or `[` first) and are at most
    /// [`MAX_JSON`]; anything else is left unread past its first byte.
    fn add(&mut self, name: String, mut r: impl Read) -> Result<(), ScanError> {
        let mut first = [0u8; 1];
        if !matches!(r.read(&mut first), Ok(1)) || !matches!(first[0], b'{' | b'[') {
            return Ok(());
        }
        let mut b = vec![first[0]];
        if r.take(MAX_JSON).read_to_end(&mut b).is_err() || b.len() as u64 > MAX_JSON {
            return Ok(());
        }
        self.held = self.held.saturating_add(b.len() as u64 + name.len() as u64);
        if self.held > self.limit {
            return Err(ScanError::ImageMetadataTooLarge { limit: self.limit });
        }
        self.map.insert(name, b);
        Ok(())
    }
}

/// Why a path an image directory names was not opened.
enum Confined {
    /// It may not be read at all.
    Refused(&'static str),
    /// Reading it failed (missing, permissions).
    Io(std::io::Error),
}

/// Opens `rel` — a path the image names — under the image directory `root` (canonical): only a
/// relative path of plain names, still inside `root` once its symlinks are resolved, and a
/// regular file (opened without blocking and checked once open: a FIFO is refused, not waited on).
fn open_in(root: &Path, rel: &str) -> Result<std::fs::File, Confined> {
    let plain = Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if rel.is_empty() || !plain {
        return Err(Confined::Refused("is absolute or leaves the image directory (..)"));
    }
    let real = std::fs::canonicalize(root.join(rel)).map_err(Confined::Io)?;
    if !real.starts_with(root) {
        return Err(Confined::Refused("leads out of the image directory through a symlink"));
    }
    let file = open_nonblocking(&real).map_err(Confined::Io)?;
    if !file.metadata().map_err(Confined::Io)?.is_file() {
        return Err(Confined::Refused("is not a regular file"));
    }
    Ok(file)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    if !std::fs::symlink_metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    std::fs::File::open(path)
}

/// `rel` refused: the typed error, the path cut for display.
fn refused(rel: &str, why: &'static str) -> ScanError {
    ScanError::ImagePath { path: rel.chars().take(200).collect(), why }
}

/// One layer to scan: where its bytes are (a path inside the archive or layout), and which
/// image and position it has.
#[derive(Clone, Debug)]
struct Layer {
    image: String,
    index: u32,
    name: String,
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config", default)]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct OciIndexOrManifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn blob_path(digest: &str) -> Option<String> {
    let (alg, hex) = digest.split_once(':')?;
    (!alg.is_empty() && !hex.is_empty() && !hex.contains('/') && !alg.contains('/'))
        .then(|| format!("blobs/{alg}/{hex}"))
}

/// The layers of every image in the archive or layout, from its JSON documents.
fn layers(json: &HashMap<String, Vec<u8>>) -> Result<Vec<Layer>, ScanError> {
    let bad = |what: &str, e: serde_json::Error| ScanError::Image(format!("{what}: {e}"));
    let mut out = Vec::new();
    if let Some(m) = json.get("manifest.json") {
        let images: Vec<DockerManifest> = serde_json::from_slice(m).map_err(|e| bad("manifest.json", e))?;
        for img in images {
            let name = img.repo_tags.and_then(|t| t.into_iter().next()).unwrap_or(img.config);
            for (i, l) in img.layers.into_iter().enumerate() {
                out.push(Layer { image: name.clone(), index: u32::try_from(i).unwrap_or(u32::MAX), name: l });
            }
        }
        return Ok(out);
    }
    let index = json.get("index.json").ok_or_else(|| {
        ScanError::Image(
            "neither a `docker save` archive (manifest.json) nor an OCI layout (index.json)".into(),
        )
    })?;
    let index: OciIndexOrManifest = serde_json::from_slice(index).map_err(|e| bad("index.json", e))?;
    let mut todo: Vec<(String, Descriptor)> =
        index.manifests.into_iter().map(|d| (String::new(), d)).collect();
    let mut depth = 0;
    while let Some((parent, d)) = todo.pop() {
        depth += 1;
        if depth > 1000 {
            return Err(ScanError::Image("index nesting too deep".into()));
        }
        let name = d
            .annotations
            .get("org.opencontainers.image.ref.name")
            .cloned()
            .or_else(|| (!parent.is_empty()).then(|| parent.clone()))
            .unwrap_or_else(|| d.digest.clone());
        let path =
            blob_path(&d.digest).ok_or_else(|| ScanError::Image(format!("bad digest {:.80}", d.digest)))?;
        let Some(doc) = json.get(&path) else {
            return Err(ScanError::Image(format!("manifest {path} is missing")));
        };
        let doc: OciIndexOrManifest = serde_json::from_slice(doc).map_err(|e| bad(&path, e))?;
        if !doc.manifests.is_empty() || d.media_type.contains("index") {
            todo.extend(doc.manifests.into_iter().map(|m| (name.clone(), m)));
            continue;
        }
        for (i, l) in doc.layers.iter().enumerate() {
            let p = blob_path(&l.digest)
                .ok_or_else(|| ScanError::Image(format!("bad digest {:.80}", l.digest)))?;
            out.push(Layer { image: name.clone(), index: u32::try_from(i).unwrap_or(u32::MAX), name: p });
        }
    }
    Ok(out)
}

/// A whiteout seen in a layer: `path` (and, if opaque, everything under it) is deleted from the
/// layers below.
struct Whiteout {
    image: String,
    layer: u32,
    path: String,
    opaque: bool,
}

impl Scanner {
    /// Scans a container image: a `docker save` tarball, an OCI layout tar, or an OCI layout
    /// directory. An archive that is neither is [`ScanError::Image`]; a layer that is corrupt or
    /// truncated is skipped and reported, the others scanned.
    pub fn scan_image(&self, path: &Path, options: &ImageOptions) -> Result<Report, ScanError> {
        super::logged("image", &path.display(), self.scan_image_unlogged(path, options))
    }

    fn scan_image_unlogged(&self, path: &Path, options: &ImageOptions) -> Result<Report, ScanError> {
        let io = |e: std::io::Error| ScanError::Io { what: path.display().to_string(), source: e };
        let meta = std::fs::metadata(path).map_err(|_| ScanError::NotFound(path.display().to_string()))?;
        let mut report = Report::default();
        let mut whiteouts = Vec::new();
        let mut state = LayerScan {
            scanner: self,
            options,
            report: &mut report,
            whiteouts: &mut whiteouts,
            buf: Vec::new(),
        };
        if meta.is_dir() {
            // Every path the image names stays inside it: absolute paths, `..`, symlinks out
            // and anything but a regular file are refused.
            let root = std::fs::canonicalize(path).map_err(io)?;
            let mut docs = Docs::new(options.max_metadata);
            for name in ["manifest.json", "index.json"] {
                match open_in(&root, name) {
                    Ok(f) => docs.add(name.to_owned(), f)?,
                    Err(Confined::Refused(why)) => return Err(refused(name, why)),
                    Err(Confined::Io(_)) => {}
                }
            }
            // OCI manifests are blobs: read the small ones (what cannot be opened inside the
            // image is left out; if a manifest names it, it is missing).
            if let Ok(algs) = std::fs::read_dir(root.join("blobs")) {
                for alg in algs.flatten() {
                    let Some(alg_name) = alg.file_name().to_str().map(str::to_owned) else { continue };
                    for blob in std::fs::read_dir(alg.path()).into_iter().flatten().flatten() {
                        let Some(blob_name) = blob.file_name().to_str().map(str::to_owned) else { continue };
                        let name = format!("blobs/{alg_name}/{blob_name}");
                        if let Ok(f) = open_in(&root, &name)
                            && f.metadata().is_ok_and(|m| m.len() <= MAX_JSON)
                        {
                            docs.add(name, f)?;
                        }
                    }
                }
            }
            for layer in layers(&docs.map)? {
                match open_in(&root, &layer.name) {
                    Ok(f) => state.layer(&layer, f),
                    Err(Confined::Refused(why)) => return Err(refused(&layer.name, why)),
                    Err(Confined::Io(e)) => state
                        .report
                        .skipped
                        .push(Skipped { what: layer.name.clone(), reason: format!("unreadable: {e}") }),
                }
            }
        } else {
            // Pass 1: the JSON documents (held in memory, within `max_metadata`). Pass 2: the
            // layers, in archive order.
            let mut docs = Docs::new(options.max_metadata);
            let mut archive = tar::Archive::new(std::fs::File::open(path).map_err(io)?);
            for entry in archive.entries().map_err(|e| ScanError::Image(format!("not a tar archive: {e}")))? {
                let entry = entry.map_err(|e| ScanError::Image(format!("corrupt archive: {e}")))?;
                let name = entry_name(&entry);
                if entry.header().entry_type().is_file()
                    && entry.size() <= MAX_JSON
                    && (name.ends_with(".json") || name.starts_with("blobs/"))
                {
                    docs.add(name, entry)?;
                }
            }
            let wanted = layers(&docs.map)?;
            let mut by_name: HashMap<&str, Vec<&Layer>> = HashMap::new();
            for l in &wanted {
                by_name.entry(l.name.as_str()).or_default().push(l);
            }
            let mut seen = std::collections::HashSet::new();
            let mut archive = tar::Archive::new(std::fs::File::open(path).map_err(io)?);
            for entry in archive.entries().map_err(|e| ScanError::Image(format!("not a tar archive: {e}")))? {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        state.report.skipped.push(Skipped {
                            what: path.display().to_string(),
                            reason: format!("corrupt archive: {e}"),
                        });
                        break;
                    }
                };
                let name = entry_name(&entry);
                if let Some(ls) = by_name.get(name.as_str()) {
                    seen.insert(name.clone());
                    // A layer shared by two images is scanned once, for the first.
                    state.layer(ls[0], entry);
                }
            }
            for l in &wanted {
                if !seen.contains(&l.name) {
                    state.report.skipped.push(Skipped {
                        what: l.name.clone(),
                        reason: "layer missing from the archive".into(),
                    });
                }
            }
        }
        mark_deleted(&mut report, &whiteouts);
        report.sort();
        Ok(report)
    }
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry.path().map(|p| p.to_string_lossy().trim_start_matches("./").to_owned()).unwrap_or_default()
}

struct LayerScan<'a> {
    scanner: &'a Scanner,
    options: &'a ImageOptions,
    report: &'a mut Report,
    whiteouts: &'a mut Vec<Whiteout>,
    buf: Vec<u8>,
}

impl LayerScan<'_> {
    fn layer(&mut self, layer: &Layer, raw: impl Read) {
        let shown = format!("{}@{}", layer.image, layer.name);
        if let Err(reason) = self.try_layer(layer, raw) {
            self.report.skipped.push(Skipped { what: shown, reason });
        }
    }

    fn try_layer(&mut self, layer: &Layer, raw: impl Read) -> Result<(), String> {
        let mut raw = BufReader::with_capacity(1 << 16, raw);
        let magic = raw.fill_buf().map_err(|e| format!("unreadable layer: {e}"))?;
        let stream: Box<dyn Read + '_> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(
                ruzstd::decoding::StreamingDecoder::new(raw)
                    .map_err(|e| format!("corrupt zstd layer: {e}"))?,
            )
        } else {
            Box::new(raw)
        };
        let mut tar = tar::Archive::new(stream);
        let entries = tar.entries().map_err(|e| format!("corrupt layer: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("corrupt or truncated layer: {e}"))?;
            let path = entry_name(&entry);
            let file_name = path.rsplit('/').next().unwrap_or(&path);
            if let Some(hidden) = file_name.strip_prefix(".wh.") {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let (target, opaque) = if hidden == ".wh..opq" {
                    (dir.to_owned(), true)
                } else if dir.is_empty() {
                    (hidden.to_owned(), false)
                } else {
                    (format!("{dir}/{hidden}"), false)
                };
                self.whiteouts.push(Whiteout {
                    image: layer.image.clone(),
                    layer: layer.index,
                    path: target,
                    opaque,
                });
                continue;
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let what = format!("{}@{}:{path}", layer.image, layer.name);
            if entry.size() > self.options.max_file_size {
                self.report.skipped.push(Skipped {
                    what,
                    reason: format!("larger than {} bytes", self.options.max_file_size),
                });
                continue;
            }
            let locate = |line, column| Location::Image {
                image: layer.image.clone(),
                layer: layer.name.clone(),
                layer_index: layer.index,
                path: path.clone(),
                line,
                column,
                deleted_in_layer: None,
            };
            self.scanner
                .scan_stream(entry, &mut self.buf, self.report, &what, &locate)
                .map_err(|e| format!("corrupt or truncated layer: {e}"))?;
        }
        Ok(())
    }
}

/// Marks findings whose file a later layer of the same image deletes.
fn mark_deleted(report: &mut Report, whiteouts: &[Whiteout]) {
    for f in &mut report.findings {
        let Location::Image { image, layer_index, path, deleted_in_layer, .. } = &mut f.location else {
            continue;
        };
        *deleted_in_layer = whiteouts
            .iter()
            .filter(|w| w.image == *image && w.layer > *layer_index)
            .filter(|w| {
                let under = w.path.is_empty() || path.starts_with(&format!("{}/", w.path));
                if w.opaque { under } else { *path == w.path || under }
            })
            .map(|w| w.layer)
            .min();
    }
}
