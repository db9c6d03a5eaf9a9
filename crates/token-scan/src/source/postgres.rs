//! PostgreSQL databases (feature `postgres`): the text, `varchar`, `char`, `json` and `jsonb`
//! columns (and arrays of text and `varchar`, one element a line; domains over these types too) of
//! every ordinary table and partition, read in one `REPEATABLE READ READ ONLY` transaction through
//! tokio-postgres: each table through a portal, fetched in batches, so memory stays bounded
//! whatever the table's size. Each value is scanned as its own text; a finding's location is
//! `postgres:SCHEMA.TABLE:COLUMN:ROW_KEY`, the row key being its primary key (`id=42`) or, without
//! one, its `ctid`. The connection string's password never appears in a location, an error, a log
//! or `Debug`.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::{Config, IsolationLevel, NoTls};

use crate::error::ScanError;
use crate::finding::{Location, Report, Skipped};
use crate::scanner::{Offset, Scanner};

/// Values held at once, at most (a batch's rows × the table's columns × `max_value_size`).
const BATCH_MEMORY: u64 = 64 << 20;
/// Rows fetched at once, at most.
const MAX_BATCH_ROWS: u64 = 1000;
/// A row key is cut at this many characters.
const MAX_ROW_KEY: usize = 100;

/// Which database, and how much of it. `Debug` hides the password.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    config: Config,
    /// Only these schemas (every schema but the system ones when empty).
    pub schemas: Vec<String>,
    /// Rows read per run, over all tables (default 10,000,000); past it the scan stops and the
    /// tables left are reported as skipped.
    pub max_rows: u64,
    /// Bytes of values read per run (default 4 GiB); past it the scan stops, as for `max_rows`.
    pub max_bytes: u64,
    /// A value longer than this (bytes, as text) is skipped and reported (default 1 MiB).
    pub max_value_size: u64,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("database", &self.place())
            .field("schemas", &self.schemas)
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// From a connection string: a URL (`postgres://USER:PASSWORD@HOST:PORT/DB`, `postgresql://…`)
    /// or libpq's `key=value` form (`host=… user=… dbname=…`). A string that does not parse is
    /// [`ScanError::Postgres`], which does not repeat it.
    pub fn parse(conninfo: &str) -> Result<Self, ScanError> {
        let config: Config = conninfo.parse().map_err(|_| {
            ScanError::Postgres(
                "not a PostgreSQL connection string (postgres://USER@HOST[:PORT]/DB or key=value pairs)"
                    .into(),
            )
        })?;
        Ok(Self {
            config,
            schemas: Vec::new(),
            max_rows: 10_000_000,
            max_bytes: 4 << 30,
            max_value_size: 1 << 20,
        })
    }

    /// Whether the connection string holds a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// Sets the password (say, from `PGPASSWORD`).
    #[must_use]
    pub fn password(mut self, password: &SecretString) -> Self {
        self.config.password(password.expose_secret());
        self
    }

    /// Only `schema` (may be given more than once).
    #[must_use]
    pub fn schema(mut self, schema: &str) -> Self {
        self.schemas.push(schema.to_owned());
        self
    }

    /// At most `rows` rows per run.
    #[must_use]
    pub fn max_rows(mut self, rows: u64) -> Self {
        self.max_rows = rows;
        self
    }

    /// At most `bytes` bytes of values per run.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The database as it may be shown: `postgres://USER@HOST:PORT/DB`, never the password.
    pub fn place(&self) -> String {
        let c = &self.config;
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
        format!("postgres://{user}{host}:{port}/{}", c.get_dbname().or(c.get_user()).unwrap_or_default())
    }

    /// `text` with the password (if any, and at least 4 bytes) replaced by `***`.
    fn scrub(&self, text: String) -> String {
        match self.config.get_password().and_then(|p| std::str::from_utf8(p).ok()) {
            Some(p) if p.len() >= 4 && text.contains(p) => text.replace(p, "***"),
            _ => text,
        }
    }
}

/// How a column is read as text.
enum Kind {
    /// Text, varchar, char, json, jsonb: `::text`.
    Text,
    /// Arrays of text or varchar: one element a line.
    Array,
}

/// A table to read: its text columns.
struct Table {
    oid: u32,
    schema: String,
    name: String,
    columns: Vec<(String, Kind)>,
}

impl Table {
    fn place(&self) -> String {
        format!("postgres:{}.{}", self.schema, self.name)
    }
}

/// An identifier, double-quoted.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// What a run has read so far, against its limits.
#[derive(Default)]
struct Spent {
    rows: u64,
    bytes: u64,
}

impl Scanner {
    /// Scans every text and JSON column of every table the options select, in one read-only
    /// transaction. A connection refused, a login refused or a catalog that cannot be read is
    /// [`ScanError::Postgres`]; a table that cannot be read (no privilege), a value longer than
    /// `max_value_size` and what the row and byte limits leave unread are skipped and reported.
    /// Blocking: call it off an async runtime's worker threads (`spawn_blocking`).
    pub fn scan_postgres(&self, options: &PostgresOptions) -> Result<Report, ScanError> {
        super::logged("postgres", &options.place(), self.scan_postgres_unlogged(options))
    }

    fn scan_postgres_unlogged(&self, o: &PostgresOptions) -> Result<Report, ScanError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ScanError::Postgres(format!("runtime: {e}")))?;
        let mut report = runtime.block_on(self.scan_database(o))?;
        report.sort();
        Ok(report)
    }

    async fn scan_database(&self, o: &PostgresOptions) -> Result<Report, ScanError> {
        let fail = |what: &str, e: tokio_postgres::Error| {
            ScanError::Postgres(o.scrub(format!("{}: {what}: {}", o.place(), error_text(&e))))
        };
        let (mut client, connection) = o.config.connect(NoTls).await.map_err(|e| fail("connecting", e))?;
        let driver = tokio::spawn(connection);
        let result = async {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| fail("starting a read-only transaction", e))?;
            let tables = tables(&tx, &o.schemas).await.map_err(|e| fail("reading the catalog", e))?;
            let mut report = Report::default();
            let mut spent = Spent::default();
            for (i, table) in tables.iter().enumerate() {
                if spent.rows >= o.max_rows || spent.bytes >= o.max_bytes {
                    report.skipped.push(limit_reached(o, &tables[i..]));
                    break;
                }
                // A table that fails (no privilege) rolls back to here; the rest go on.
                let sp = tx.savepoint("tokenward_scan").await.map_err(|e| fail("a savepoint", e))?;
                match self.scan_table(&sp, table, o, &mut report, &mut spent).await {
                    Ok(()) => sp.commit().await.map_err(|e| fail("a savepoint", e))?,
                    Err(e) => {
                        report.skipped.push(Skipped { what: table.place(), reason: o.scrub(error_text(&e)) });
                        sp.rollback().await.map_err(|e| fail("a savepoint", e))?;
                    }
                }
            }
            tx.rollback().await.map_err(|e| fail("ending the transaction", e))?;
            Ok(report)
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    }

    async fn scan_table(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        table: &Table,
        o: &PostgresOptions,
        report: &mut Report,
        spent: &mut Spent,
    ) -> Result<(), tokio_postgres::Error> {
        let keys = primary_key(tx, table.oid).await?;
        // The key columns, then the ctid (the row key without a primary key, or when the primary
        // key would show a secret).
        let mut select: Vec<String> = keys.iter().map(|k| format!("{}::text", quote(k))).collect();
        select.push("ctid::text".into());
        let first_value = select.len();
        for (name, kind) in &table.columns {
            let text = match kind {
                Kind::Text => format!("{}::text", quote(name)),
                Kind::Array => format!("array_to_string({}, E'\\n')", quote(name)),
            };
            select.push(format!("CASE WHEN octet_length({text}) <= $1::int8 THEN {text} END"));
            select.push(format!("octet_length({text})::int8"));
        }
        let sql =
            format!("SELECT {} FROM {}.{}", select.join(", "), quote(&table.schema), quote(&table.name));
        let cap = i64::try_from(o.max_value_size).unwrap_or(i64::MAX);
        let portal = tx.bind(sql.as_str(), &[&cap]).await?;
        let per_row = (table.columns.len() as u64).max(1).saturating_mul(o.max_value_size.max(1));
        let batch = (BATCH_MEMORY / per_row).clamp(1, MAX_BATCH_ROWS);
        loop {
            let want = batch.min(o.max_rows.saturating_sub(spent.rows)).max(1);
            let rows = tx.query_portal(&portal, want as i32).await?;
            for row in &rows {
                spent.rows += 1;
                let (findings, tokens) = (report.findings.len(), report.suppressed_tokens.len());
                let mut oversized = Vec::new();
                for (c, (column, _)) in table.columns.iter().enumerate() {
                    let at = first_value + 2 * c;
                    let Some(size) = row.get::<_, Option<i64>>(at + 1) else { continue };
                    let Some(value) = row.get::<_, Option<&str>>(at) else {
                        oversized.push((column, size));
                        continue;
                    };
                    report.files += 1;
                    report.bytes += value.len() as u64;
                    spent.bytes += value.len() as u64;
                    let locate = |line, col| Location::Postgres {
                        schema: table.schema.clone(),
                        table: table.name.clone(),
                        field: column.clone(),
                        row: String::new(),
                        line,
                        column: col,
                    };
                    self.scan_chunk(value.as_bytes(), value.len(), Offset::default(), report, &locate);
                }
                let key = self.row_key(
                    row,
                    &keys,
                    &report.findings[findings..],
                    &report.suppressed_tokens[tokens..],
                );
                for f in report.findings[findings..]
                    .iter_mut()
                    .chain(report.suppressed_tokens[tokens..].iter_mut())
                {
                    if let Location::Postgres { row, .. } = &mut f.location {
                        row.clone_from(&key);
                    }
                }
                for (column, size) in oversized {
                    report.skipped.push(Skipped {
                        what: format!("{}:{column}:{key}", table.place()),
                        reason: format!("larger than {} bytes ({size})", o.max_value_size),
                    });
                }
            }
            if (rows.len() as u64) < want {
                return Ok(());
            }
            if spent.rows >= o.max_rows || spent.bytes >= o.max_bytes {
                report.skipped.push(limit_reached(o, std::slice::from_ref(table)));
                return Ok(());
            }
        }
    }
}

/// What the limits leave unread, as one skipped entry.
fn limit_reached(o: &PostgresOptions, left: &[Table]) -> Skipped {
    let which = if left.len() == 1 {
        "its remaining rows (if any)".to_owned()
    } else {
        format!("its remaining rows (if any) and {} table(s) after it", left.len() - 1)
    };
    Skipped {
        what: left.first().map(Table::place).unwrap_or_default(),
        reason: format!(
            "the run's limit ({} rows, {} bytes) was reached: {which} not scanned",
            o.max_rows, o.max_bytes
        ),
    }
}

impl Scanner {
    /// A row's key: `id=42`, `a=1,b=x` (a composite primary key), cut at 100 characters; or
    /// `ctid=(0,1)` without a primary key, or when the key would show a secret: one this row's
    /// `found` holds, or anything the scanner matches in the key alone (even a suppressed match).
    fn row_key(
        &self,
        row: &tokio_postgres::Row,
        keys: &[String],
        found: &[crate::finding::Finding],
        tokens: &[crate::finding::Finding],
    ) -> String {
        let ctid = || format!("ctid={}", row.get::<_, Option<&str>>(keys.len()).unwrap_or_default());
        if keys.is_empty() {
            return ctid();
        }
        let mut key = String::new();
        for (i, name) in keys.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(name);
            key.push('=');
            key.push_str(row.get::<_, Option<&str>>(i).unwrap_or("NULL"));
        }
        if found.iter().chain(tokens).any(|f| key.contains(f.secret().expose_secret())) {
            return ctid();
        }
        // Numbers (and UUIDs, dates) need no second look.
        let plain = (0..keys.len()).all(|i| {
            row.get::<_, Option<&str>>(i)
                .is_none_or(|v| v.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
        });
        if !plain {
            let alone = self.scan_bytes("", key.as_bytes());
            if !alone.findings.is_empty()
                || !alone.suppressed.is_empty()
                || !alone.suppressed_tokens.is_empty()
            {
                return ctid();
            }
        }
        match key.char_indices().nth(MAX_ROW_KEY) {
            Some((at, _)) => format!("{}…", &key[..at]),
            None => key,
        }
    }
}

/// A database error's text: the server's message (its `DETAIL` left out: it may quote values), or
/// the client's with its causes (`error connecting to server: Connection refused`).
fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Every ordinary table and partition (in `schemas`, or every non-system schema) with at least one
/// text-like column, and those columns in order.
async fn tables(
    tx: &tokio_postgres::Transaction<'_>,
    schemas: &[String],
) -> Result<Vec<Table>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, a.attname::text,
                    bt.typcategory = 'A' AS is_array
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
               JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
              WHERE c.relkind = 'r'
                AND bt.oid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'json'::regtype,
                               'jsonb'::regtype, 'text[]'::regtype, 'varchar[]'::regtype)
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
                AND (cardinality($1::text[]) = 0 OR n.nspname = ANY ($1::text[]))
              ORDER BY n.nspname, c.relname, a.attnum",
            &[&schemas],
        )
        .await?;
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let column: String = row.get(3);
        let kind = if row.get::<_, bool>(4) { Kind::Array } else { Kind::Text };
        match tables.last_mut() {
            Some(t) if t.oid == oid => t.columns.push((column, kind)),
            _ => tables.push(Table {
                oid,
                schema: row.get(1),
                name: row.get(2),
                columns: vec![(column, kind)],
            }),
        }
    }
    Ok(tables)
}

/// The table's primary key columns, in key order (none without one).
async fn primary_key(
    tx: &tokio_postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT a.attname::text
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = $1 AND i.indisprimary
              ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&oid],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
