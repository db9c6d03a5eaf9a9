//! Git history: every blob reachable from every ref (and, on request, unreachable ones), each
//! secret reported once, with the commit that introduced it. Reads the repository through the
//! `git` command (`git log --raw` for which commit added which blob, `git cat-file --batch` for
//! the blobs), so any repository git reads — packed, shallow, with alternates — works.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::ScanError;
use crate::finding::{Location, Report, Skipped};
use crate::scanner::{Offset, Scanner};
use crate::source::{Progress, ProgressFn};

/// How to scan history.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct GitOptions {
    /// Also scan objects no ref reaches (`git fsck --unreachable`): deleted branches, dropped
    /// stashes. Their findings have no commit.
    pub unreachable: bool,
    /// Blobs larger than this are skipped and reported (default 64 MiB when 0).
    pub max_blob_size: u64,
    /// Called after each blob with the running totals.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for GitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOptions")
            .field("unreachable", &self.unreachable)
            .field("max_blob_size", &self.max_blob_size)
            .finish_non_exhaustive()
    }
}

impl GitOptions {
    /// Scan unreachable objects too.
    #[must_use]
    pub fn unreachable(mut self, on: bool) -> Self {
        self.unreachable = on;
        self
    }

    /// Calls `f` as blobs are scanned (from scanning threads).
    #[must_use]
    pub fn progress(mut self, f: crate::source::ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }
}

/// A blob to scan: the commit that first added it and the path it was added under.
struct Blob {
    oid: String,
    commit: Option<String>,
    path: String,
}

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(["-c", "core.quotepath=off"]).stdin(Stdio::null());
    cmd
}

fn run(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ScanError> {
    let out = git(repo)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(ScanError::Git(format!("git {}: {}", args[0], err.trim())));
    }
    Ok(out.stdout)
}

/// Every blob in history, once, in the order commits introduced them (oldest first).
fn introduced_blobs(repo: &Path) -> Result<Vec<Blob>, ScanError> {
    let log = run(
        repo,
        &["log", "--all", "--reverse", "--raw", "--no-abbrev", "--no-renames", "-m", "--format=%x01%H"],
    )?;
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    let mut commit = String::new();
    for line in log.split(|c| *c == b'\n') {
        if let Some(hash) = line.strip_prefix(b"\x01") {
            commit = String::from_utf8_lossy(hash).into_owned();
            continue;
        }
        // `:<old mode> <new mode> <old oid> <new oid> <status>\t<path>`
        let Some(raw) = line.strip_prefix(b":") else { continue };
        let Some(tab) = memchr::memchr(b'\t', raw) else { continue };
        let fields: Vec<&[u8]> = raw[..tab].split(|c| *c == b' ').collect();
        let [_, new_mode, _, new_oid, status] = fields.as_slice() else { continue };
        if status.starts_with(b"D") || *new_mode == b"160000" || new_oid.iter().all(|c| *c == b'0') {
            continue;
        }
        let oid = String::from_utf8_lossy(new_oid).into_owned();
        if seen.insert(oid.clone()) {
            let path = String::from_utf8_lossy(&raw[tab + 1..]).into_owned();
            blobs.push(Blob { oid, commit: Some(commit.clone()), path });
        }
    }
    Ok(blobs)
}

fn unreachable_blobs(repo: &Path, known: &HashSet<String>) -> Result<Vec<Blob>, ScanError> {
    let out = run(repo, &["fsck", "--unreachable", "--no-reflogs", "--no-progress"])?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("unreachable blob "))
        .filter(|oid| !known.contains(*oid))
        .map(|oid| Blob {
            oid: oid.to_owned(),
            commit: None,
            path: format!("(blob {})", &oid[..oid.len().min(12)]),
        })
        .collect())
}

impl Scanner {
    /// Scans a repository's history. Not a repository, or no `git`: [`ScanError::Git`]. A blob
    /// git cannot read is skipped and reported.
    pub fn scan_git(&self, repo: &Path, options: &GitOptions) -> Result<Report, ScanError> {
        super::logged("git", &repo.display(), self.scan_git_unlogged(repo, options))
    }

    fn scan_git_unlogged(&self, repo: &Path, options: &GitOptions) -> Result<Report, ScanError> {
        run(repo, &["rev-parse", "--git-dir"])?;
        let mut blobs = introduced_blobs(repo)?;
        if options.unreachable {
            let known: HashSet<String> = blobs.iter().map(|b| b.oid.clone()).collect();
            blobs.extend(unreachable_blobs(repo, &known)?);
        }
        let max = if options.max_blob_size == 0 { 64 << 20 } else { options.max_blob_size };
        let mut cat = git(repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
        let mut stdin = cat.stdin.take().ok_or_else(|| ScanError::Git("no stdin".into()))?;
        let ids: Vec<String> = blobs.iter().map(|b| b.oid.clone()).collect();
        let feeder = std::thread::spawn(move || {
            for id in ids {
                if writeln!(stdin, "{id}").is_err() {
                    break;
                }
            }
        });
        let stdout = cat.stdout.take().ok_or_else(|| ScanError::Git("no stdout".into()))?;
        let mut out = BufReader::with_capacity(1 << 20, stdout);
        let mut report = Report::default();
        let mut totals = Progress::default();
        // This thread reads blobs from git; scanning threads scan them, a few blobs in flight;
        // their reports are merged in history's order, so that each secret is reported where
        // history first had it, as a serial scan would.
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let (send, receive) = std::sync::mpsc::sync_channel::<Vec<(usize, Vec<u8>)>>(2 * threads);
        let receive = std::sync::Mutex::new(receive);
        let blobs = &blobs;
        let mut scanned: Vec<(usize, Report)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next =
                                receive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                            let Ok(batch) = next else { break };
                            for (i, data) in batch {
                                let blob = &blobs[i];
                                let mut one = Report::default();
                                let locate = |line, column| Location::Git {
                                    commit: blob.commit.clone(),
                                    path: blob.path.clone(),
                                    line,
                                    column,
                                };
                                self.scan_chunk(&data, data.len(), Offset::default(), &mut one, &locate);
                                done.push((i, one));
                            }
                        }
                        done
                    })
                })
                .collect();
            let read = read_blobs(blobs, &mut out, max, &mut report, &mut totals, options, &send);
            drop(send);
            let mut scanned = Vec::new();
            for w in workers {
                // A scanning thread that panicked lost its blobs' findings: the scan fails
                // rather than report fewer findings than the history holds.
                scanned.extend(w.join().map_err(|_| ScanError::Git("a scanning thread panicked".into()))?);
            }
            read.map(|()| scanned)
        })?;
        scanned.sort_unstable_by_key(|(i, _)| *i);
        let mut seen = HashSet::new();
        let mut seen_suppressed = HashSet::new();
        for (_, one) in scanned {
            for (k, v) in one.suppressed {
                *report.suppressed.entry(k).or_default() += v;
            }
            for f in one.suppressed_tokens {
                if seen_suppressed.insert(f.fingerprint.clone()) {
                    report.suppressed_tokens.push(f);
                }
            }
            for f in one.findings {
                // One secret, once: where history first had it.
                if seen.insert((f.rule.clone(), f.fingerprint.clone())) {
                    report.findings.push(f);
                } else {
                    report.suppress("seen in an earlier commit");
                }
            }
        }
        let _ = feeder.join();
        let _ = cat.kill();
        let _ = cat.wait();
        Ok(report)
    }
}

/// Reads `blobs` from `git cat-file --batch`'s output in order, sending the text blobs to the
/// scanning threads in batches of about 1 MiB (counted in `report`; most blobs are small, and a
/// hand-off per blob would cost more than scanning it); a blob too large or unreadable is
/// skipped and reported, a binary one counted.
#[allow(clippy::too_many_arguments)]
fn read_blobs(
    blobs: &[Blob],
    out: &mut impl BufRead,
    max: u64,
    report: &mut Report,
    totals: &mut Progress,
    options: &GitOptions,
    send: &std::sync::mpsc::SyncSender<Vec<(usize, Vec<u8>)>>,
) -> Result<(), ScanError> {
    const BATCH: usize = 1 << 20;
    let mut header = String::new();
    let mut batch = Vec::new();
    let mut batched = 0;
    for (i, blob) in blobs.iter().enumerate() {
        header.clear();
        if out.read_line(&mut header).map_err(|e| ScanError::Git(format!("reading blobs: {e}")))? == 0 {
            report.skipped.push(Skipped { what: blob.oid.clone(), reason: "git stopped answering".into() });
            break;
        }
        let parts: Vec<&str> = header.split_whitespace().collect();
        let size = match parts.as_slice() {
            [_, "blob", size] => size.parse::<u64>().ok(),
            _ => None,
        };
        let Some(size) = size else {
            report.skipped.push(Skipped {
                what: blob.oid.clone(),
                reason: format!("unreadable object ({})", header.trim()),
            });
            continue;
        };
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        if size > max {
            std::io::copy(&mut out.take(size + 1), &mut std::io::sink())
                .map_err(|e| ScanError::Git(format!("reading blobs: {e}")))?;
            report.skipped.push(Skipped {
                what: format!("{} ({})", blob.path, blob.oid),
                reason: format!("larger than {max} bytes"),
            });
            continue;
        }
        let mut data = vec![0; len + 1];
        out.read_exact(&mut data).map_err(|e| ScanError::Git(format!("reading blobs: {e}")))?;
        data.truncate(len);
        if memchr::memchr(0, &data[..len.min(8000)]).is_some() {
            report.suppress("binary blob");
            continue;
        }
        report.files += 1;
        report.bytes += size;
        if let Some(p) = &options.progress {
            totals.files = report.files;
            totals.bytes = report.bytes;
            p(totals);
        }
        batched += data.len();
        batch.push((i, data));
        if batched >= BATCH {
            batched = 0;
            if send.send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = send.send(batch);
    }
    Ok(())
}
