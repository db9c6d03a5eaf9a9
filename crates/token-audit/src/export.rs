//! The streaming exporter: entries as JSON lines to any writer (a SIEM's socket, a pipe, a file),
//! resuming where it left off.

use std::io::Write;

use crate::chain::{ChainHead, ChainVerifier};
use crate::error::AuditError;
use crate::storage::LogStorage;

/// Streams a log's entries, verified as they go, as JSON lines (the file log's exact format) to a
/// writer; each call sends what was appended since the last one. The chain is verified across
/// calls, so a log rewritten behind the exporter's back is reported, not forwarded.
#[derive(Debug)]
pub struct JsonlExporter {
    verifier: ChainVerifier,
    page: usize,
    buf: Vec<u8>,
}

impl JsonlExporter {
    /// Exports from the first entry.
    pub fn new() -> Self {
        Self::resume(ChainHead::EMPTY)
    }

    /// Exports after `head` (where an earlier exporter stopped: [`JsonlExporter::position`]).
    pub fn resume(head: ChainHead) -> Self {
        Self { verifier: ChainVerifier::new(head), page: 4096, buf: Vec::with_capacity(1 << 16) }
    }

    /// Where the export stands (persist it to resume).
    pub fn position(&self) -> ChainHead {
        self.verifier.head()
    }

    /// Sends every entry appended since the last call to `out` (flushed at the end); returns how many.
    pub async fn export_new(
        &mut self,
        storage: &dyn LogStorage,
        out: &mut (dyn Write + Send),
    ) -> Result<u64, AuditError> {
        let mut sent = 0;
        loop {
            let page = storage.read(self.verifier.head().len, self.page).await?;
            if page.is_empty() {
                break;
            }
            self.buf.clear();
            for e in &page {
                self.verifier.push(e)?;
                e.json_line_into(&mut self.buf);
            }
            out.write_all(&self.buf).map_err(AuditError::io("export"))?;
            sent += page.len() as u64;
        }
        out.flush().map_err(AuditError::io("export"))?;
        Ok(sent)
    }
}

impl Default for JsonlExporter {
    fn default() -> Self {
        Self::new()
    }
}
