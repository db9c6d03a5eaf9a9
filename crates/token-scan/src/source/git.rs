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
    /// Called as each text blob is read and handed to the scanning threads, with the running totals.
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

    /// Calls `f` as blobs are read for scanning (from the thread reading them).
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

/// Parses `git log --raw` output (see [`log_command`]) line by line: each blob the first time a
/// commit adds it, with that commit and the path it was added under (oldest first).
struct Introduced {
    seen: HashSet<String>,
    commit: String,
}

impl Introduced {
    fn line(&mut self, line: &[u8]) -> Option<Blob> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(hash) = line.strip_prefix(b"\x01") {
            self.commit = String::from_utf8_lossy(hash).into_owned();
            return None;
        }
        // `:<old mode> <new mode> <old oid> <new oid> <status>\t<path>`
        let raw = line.strip_prefix(b":")?;
        let tab = memchr::memchr(b'\t', raw)?;
        let fields: Vec<&[u8]> = raw[..tab].split(|c| *c == b' ').collect();
        let [_, new_mode, _, new_oid, status] = fields.as_slice() else { return None };
        if status.starts_with(b"D") || *new_mode == b"160000" || new_oid.iter().all(|c| *c == b'0') {
            return None;
        }
        let oid = String::from_utf8_lossy(new_oid).into_owned();
        if !self.seen.insert(oid.clone()) {
            return None;
        }
        let path = String::from_utf8_lossy(&raw[tab + 1..]).into_owned();
        Some(Blob { oid, commit: Some(self.commit.clone()), path })
    }
}

/// Which commit added which blob, for every commit reachable from every ref, oldest first.
fn log_command(repo: &Path) -> Command {
    let mut cmd = git(repo);
    cmd.args(["log", "--all", "--reverse", "--raw", "--no-abbrev", "--no-renames", "-m", "--format=%x01%H"]);
    cmd
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

/// Lists the blobs to scan while git still walks history: each blob is sent to `blobs` (in
/// order), then asked of `git cat-file --batch` through `stdin`, so that reading and scanning
/// start with the first commit's blobs instead of after the whole log.
fn list_blobs(
    repo: &Path,
    unreachable: bool,
    mut stdin: std::process::ChildStdin,
    blobs: &std::sync::mpsc::Sender<Blob>,
) -> Result<(), ScanError> {
    let mut log = log_command(repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    let stdout = log.stdout.take().ok_or_else(|| ScanError::Git("no stdout".into()))?;
    let mut stderr = log.stderr.take().ok_or_else(|| ScanError::Git("no stderr".into()))?;
    // git's complaints, read aside so that a chatty git cannot block on a full pipe.
    let complaints = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut ask = |blob: Blob| -> bool {
        let oid = blob.oid.clone();
        // Sent before it is asked for: the reader knows each blob before git answers it.
        blobs.send(blob).is_ok() && writeln!(stdin, "{oid}").is_ok()
    };
    let mut introduced = Introduced { seen: HashSet::new(), commit: String::new() };
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = Vec::new();
    let mut asking = true;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(ScanError::Git(format!("reading git log: {e}"))),
        }
        if let Some(blob) = introduced.line(&line)
            && !ask(blob)
        {
            // The reader stopped (git cat-file died): it reports that.
            asking = false;
            break;
        }
    }
    drop(reader);
    let status = log.wait().map_err(|e| ScanError::Git(format!("git log: {e}")))?;
    let complaints = complaints.join().unwrap_or_default();
    if asking && !status.success() {
        return Err(ScanError::Git(format!("git log: {}", complaints.trim())));
    }
    if asking && unreachable {
        for blob in unreachable_blobs(repo, &introduced.seen)? {
            if !ask(blob) {
                break;
            }
        }
    }
    Ok(())
}

/// A text blob read, for a scanning thread: its place in history's order, and its bytes.
type Batch = Vec<(usize, Blob, Vec<u8>)>;

impl Scanner {
    /// Scans a repository's history. Not a repository, or no `git`: [`ScanError::Git`]. A blob
    /// git cannot read is skipped and reported.
    pub fn scan_git(&self, repo: &Path, options: &GitOptions) -> Result<Report, ScanError> {
        super::logged("git", &repo.display(), self.scan_git_unlogged(repo, options))
    }

    fn scan_git_unlogged(&self, repo: &Path, options: &GitOptions) -> Result<Report, ScanError> {
        run(repo, &["rev-parse", "--git-dir"])?;
        let max = if options.max_blob_size == 0 { 64 << 20 } else { options.max_blob_size };
        let mut cat = git(repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
        let stdin = cat.stdin.take().ok_or_else(|| ScanError::Git("no stdin".into()))?;
        let stdout = cat.stdout.take().ok_or_else(|| ScanError::Git("no stdout".into()))?;
        // One thread lists the blobs from git log and asks git cat-file for each; this one reads
        // them; scanning threads scan them, a few batches in flight. Their reports are merged in
        // history's order, so that each secret is reported where history first had it, as a
        // serial scan would.
        let (blob_send, blob_receive) = std::sync::mpsc::channel::<Blob>();
        let repo_owned = repo.to_owned();
        let unreachable = options.unreachable;
        let lister = std::thread::spawn(move || list_blobs(&repo_owned, unreachable, stdin, &blob_send));
        let mut out = BufReader::with_capacity(1 << 20, stdout);
        let mut report = Report::default();
        let mut totals = Progress::default();
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let (send, receive) = std::sync::mpsc::sync_channel::<Batch>(2 * threads);
        let receive = std::sync::Mutex::new(receive);
        let scanned: Result<Vec<(usize, Report)>, ScanError> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next =
                                receive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                            let Ok(batch) = next else { break };
                            for (i, blob, data) in batch {
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
            let read = read_blobs(&blob_receive, &mut out, max, &mut report, &mut totals, options, &send);
            drop(send);
            let mut scanned = Vec::new();
            for w in workers {
                // A scanning thread that panicked lost its blobs' findings: the scan fails
                // rather than report fewer findings than the history holds.
                scanned.extend(w.join().map_err(|_| ScanError::Git("a scanning thread panicked".into()))?);
            }
            read.map(|()| scanned)
        });
        // Whatever happened, git is stopped and the lister ends (its sends fail, its pipe closes).
        drop(blob_receive);
        drop(out);
        let _ = cat.kill();
        let _ = cat.wait();
        let listed = lister.join().map_err(|_| ScanError::Git("the blob lister panicked".into()))?;
        let mut scanned = scanned?;
        listed?;
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
        Ok(report)
    }
}

/// Reads the blobs `blobs` lists from `git cat-file --batch`'s output in order, sending the text
/// blobs to the scanning threads in batches of about 1 MiB (counted in `report`; most blobs are
/// small, and a hand-off per blob would cost more than scanning it); a blob too large or
/// unreadable is skipped and reported, a binary one counted.
#[allow(clippy::too_many_arguments)]
fn read_blobs(
    blobs: &std::sync::mpsc::Receiver<Blob>,
    out: &mut impl BufRead,
    max: u64,
    report: &mut Report,
    totals: &mut Progress,
    options: &GitOptions,
    send: &std::sync::mpsc::SyncSender<Batch>,
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
        batch.push((i, blob, data));
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
