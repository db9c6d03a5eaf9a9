//! [`FileWitness`]: a witness in a directory, its records files created once and never rewritten.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{MAX_RECORD, Witness, WitnessError, WitnessedHead, parse_record_name, record_name};

/// A witness in a directory — on another mount, another host's export, a WORM share — that the
/// store's writer cannot rewrite. Each record is a file created once (`0600`, never opened for
/// writing again), synced with its directory; the newest is found by name.
#[derive(Debug, Clone)]
pub struct FileWitness {
    dir: PathBuf,
}

impl FileWitness {
    /// The witness in `dir` (created `0700` if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, WitnessError> {
        let dir = dir.into();
        token_core::private_fs::create_dir_all(&dir).map_err(|e| WitnessError::Unavailable {
            location: format!("dir:{}", dir.display()),
            detail: format!("creating the directory: {e}"),
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> WitnessError {
        WitnessError::Unavailable { location: self.location(), detail: format!("{what}: {e}") }
    }

    fn read_record(&self, path: &Path) -> Result<String, WitnessError> {
        let f = std::fs::File::open(path).map_err(|e| self.unavailable("reading a record", e))?;
        let mut text = String::new();
        f.take(MAX_RECORD as u64 + 1).read_to_string(&mut text).map_err(|e| WitnessError::BadRecord {
            location: path.display().to_string(),
            detail: e.to_string(),
        })?;
        if text.len() > MAX_RECORD {
            return Err(WitnessError::BadRecord {
                location: path.display().to_string(),
                detail: format!("larger than {MAX_RECORD} bytes"),
            });
        }
        Ok(text)
    }
}

#[async_trait]
impl Witness for FileWitness {
    fn location(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn push(&self, head: &WitnessedHead) -> Result<(), WitnessError> {
        let path = self.dir.join(record_name(head.epoch, head.size));
        match token_core::private_fs::options().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let written = f.write_all(head.note.as_bytes()).and_then(|()| f.sync_all());
                if let Err(e) = written {
                    drop(f);
                    let _ = std::fs::remove_file(&path);
                    return Err(self.unavailable("writing a record", e));
                }
                // The record's name is durable too.
                std::fs::File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| self.unavailable("syncing the directory", e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if self.read_record(&path)? == head.note {
                    Ok(())
                } else {
                    Err(WitnessError::Conflict { epoch: head.epoch, size: head.size })
                }
            }
            Err(e) => Err(self.unavailable("creating a record", e)),
        }
    }

    async fn newest(&self) -> Result<Option<WitnessedHead>, WitnessError> {
        let mut best: Option<(String, (u64, u64))> = None;
        for e in std::fs::read_dir(&self.dir).map_err(|e| self.unavailable("listing", e))? {
            let e = e.map_err(|e| self.unavailable("listing", e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pos) = parse_record_name(&name) else { continue };
            if best.as_ref().is_none_or(|(_, b)| pos > *b) {
                best = Some((name, pos));
            }
        }
        let Some((name, (epoch, size))) = best else { return Ok(None) };
        let note = self.read_record(&self.dir.join(name))?;
        Ok(Some(WitnessedHead { epoch, size, note }))
    }
}
