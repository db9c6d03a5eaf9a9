//! Directory trees: ripgrep's walker (`ignore`) in parallel, binaries and oversized files skipped
//! and reported, every file streamed in bounded chunks.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ignore::{WalkBuilder, WalkState};

use crate::error::ScanError;
use crate::finding::{Location, Report, Skipped};
use crate::scanner::Scanner;
use crate::source::{Progress, ProgressFn};

/// How to walk a tree.
#[derive(Clone)]
#[non_exhaustive]
pub struct TreeOptions {
    /// Skip what `.gitignore` / `.ignore` files exclude (off by default: a leaked `.env` is often
    /// ignored, and still on disk).
    pub gitignore: bool,
    /// Files larger than this are skipped and reported (default 256 MiB).
    pub max_file_size: u64,
    /// Walker threads (default: the machine's parallelism).
    pub threads: usize,
    /// Called after each file with the running totals.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for TreeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeOptions")
            .field("gitignore", &self.gitignore)
            .field("max_file_size", &self.max_file_size)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Default for TreeOptions {
    fn default() -> Self {
        Self {
            gitignore: false,
            max_file_size: 256 << 20,
            threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            progress: None,
        }
    }
}

impl TreeOptions {
    /// Respect ignore files or not.
    #[must_use]
    pub fn gitignore(mut self, on: bool) -> Self {
        self.gitignore = on;
        self
    }

    /// The largest file scanned.
    #[must_use]
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// A progress callback.
    #[must_use]
    pub fn progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }
}

/// One walker thread's state; its report joins the others when the thread is done.
struct Worker<'a> {
    report: Report,
    buf: Vec<u8>,
    done: &'a Mutex<Vec<Report>>,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let report = std::mem::take(&mut self.report);
        self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(report);
    }
}

impl Scanner {
    /// Scans a directory tree (or one file). The `.git` directory is not walked (scan history
    /// with [`Scanner::scan_git`]). Unreadable entries are skipped and listed in the report.
    pub fn scan_tree(&self, root: &Path, options: &TreeOptions) -> Result<Report, ScanError> {
        super::logged("tree", &root.display(), self.scan_tree_unlogged(root, options))
    }

    fn scan_tree_unlogged(&self, root: &Path, options: &TreeOptions) -> Result<Report, ScanError> {
        let meta = std::fs::metadata(root).map_err(|_| ScanError::NotFound(root.display().to_string()))?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(ScanError::NotFound(root.display().to_string()));
        }
        let is_dir = meta.is_dir();
        let done = Mutex::new(Vec::new());
        let totals = Arc::new(Mutex::new(Progress::default()));
        let mut walk = WalkBuilder::new(root);
        walk.hidden(false)
            .parents(options.gitignore)
            .ignore(options.gitignore)
            .git_ignore(options.gitignore)
            .git_global(false)
            .git_exclude(options.gitignore)
            .require_git(false)
            .follow_links(false)
            .threads(options.threads.max(1))
            .filter_entry(|e| e.file_name() != ".git");
        walk.build_parallel().run(|| {
            let mut worker = Worker { report: Report::default(), buf: Vec::new(), done: &done };
            let totals = Arc::clone(&totals);
            let progress = options.progress.clone();
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        worker
                            .report
                            .skipped
                            .push(Skipped { what: root.display().to_string(), reason: e.to_string() });
                        return WalkState::Continue;
                    }
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return WalkState::Continue;
                }
                let path = entry.path();
                let shown = if is_dir { path.strip_prefix(root).unwrap_or(path) } else { path };
                let shown = shown.to_string_lossy().into_owned();
                let (files, bytes) = (worker.report.files, worker.report.bytes);
                scan_file(self, path, &shown, options, &mut worker);
                if let Some(progress) = &progress {
                    let mut t = totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    t.files += worker.report.files - files;
                    t.bytes += worker.report.bytes - bytes;
                    progress(&t);
                }
                WalkState::Continue
            })
        });
        let mut report = Report::default();
        for r in done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            report.merge(r);
        }
        report.sort();
        report.skipped.sort_by(|a, b| a.what.cmp(&b.what));
        Ok(report)
    }
}

fn scan_file(scanner: &Scanner, path: &Path, shown: &str, options: &TreeOptions, worker: &mut Worker<'_>) {
    let skip = |worker: &mut Worker<'_>, reason: String| {
        worker.report.skipped.push(Skipped { what: shown.to_owned(), reason });
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return skip(worker, format!("unreadable: {e}")),
    };
    match file.metadata() {
        Ok(m) if m.len() > options.max_file_size => {
            return skip(worker, format!("larger than {} bytes", options.max_file_size));
        }
        Ok(_) => {}
        Err(e) => return skip(worker, format!("unreadable: {e}")),
    }
    let locate = |line, column| Location::File { path: shown.to_owned(), line, column };
    if let Err(e) = scanner.scan_stream(file, &mut worker.buf, &mut worker.report, shown, &locate) {
        skip(worker, format!("read failed: {e}"));
    }
    // A huge file's buffer is not kept for the next one.
    if worker.buf.capacity() > 2 * crate::scanner::CHUNK {
        worker.buf = Vec::new();
    }
}
