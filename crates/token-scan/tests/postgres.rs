//! PostgreSQL databases against the real server `scripts/test.sh` starts (`TOKENWARD_PG_URL`), in a
//! schema of the test's own: secrets planted in text, jsonb, varchar and text[] columns are found
//! at `postgres:SCHEMA.TABLE:COLUMN:ROW_KEY`; the scan runs in a read-only transaction (a
//! row-level security policy shows a table's rows only to a read-only transaction); a primary key
//! holding a secret is never shown (the row is named by its ctid); a table
//! without privilege, an oversized value and the run's row limit are skipped and reported; the
//! password is in no output and no error.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use token_scan::*;
use tokenward_test_support::FreshSchema;

/// GitHub tokens with valid checksums (from tests/vectors/github-tokens.json).
fn tokens() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/github-tokens.json")).unwrap();
    v["valid"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

/// Runs `sql` on `conninfo` (a runtime of its own).
fn sql(conninfo: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(conn);
        let r = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        r
    })
}

/// A login role of the test's own (with a password: the server asks every role but the test
/// superuser for one), dropped with its privileges at the end.
struct Role {
    server: String,
    name: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = sql(&self.server, &format!("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}", self.name));
    }
}

#[test]
fn tables_text_and_json_columns_are_scanned_read_only_with_row_keys() {
    let Some(schema) = FreshSchema::create("scanpg") else { return };
    let t = tokens();
    let s = schema.name();
    let password = "pw-Sc4n-0nly-9f2c";
    let role = Role { server: schema.server().to_owned(), name: format!("{s}_reader") };
    let r = &role.name;
    sql(
        schema.server(),
        &format!(
            "CREATE TABLE {s}.users (id int PRIMARY KEY, name text, notes text, profile jsonb, age int);
             INSERT INTO {s}.users VALUES
               (1, 'ada', E'first line\\ntoken: {t0}', '{{\"ci\": {{\"token\": \"{t1}\"}}}}', 36),
               (2, 'bob', 'nothing here', '{{\"a\": 1}}', 41),
               (3, NULL, NULL, NULL, NULL);
             CREATE TABLE {s}.nokey (label varchar(200), tags text[]);
             INSERT INTO {s}.nokey VALUES ('plain', ARRAY['x', '{t2}']);
             CREATE TABLE {s}.guarded (id int PRIMARY KEY, secret text);
             INSERT INTO {s}.guarded VALUES (7, 'GH={t3}');
             ALTER TABLE {s}.guarded ENABLE ROW LEVEL SECURITY;
             CREATE POLICY read_only_only ON {s}.guarded FOR SELECT
               USING (current_setting('transaction_read_only') = 'on');
             CREATE TABLE {s}.hidden (id int PRIMARY KEY, secret text);
             INSERT INTO {s}.hidden VALUES (1, '{t4}');
             CREATE TABLE {s}.big (id int PRIMARY KEY, body text);
             INSERT INTO {s}.big VALUES (1, repeat('a', 5000) || '{t5}');
             CREATE TABLE {s}.keyed (token text PRIMARY KEY, note text);
             INSERT INTO {s}.keyed VALUES ('{t6}', '{t7}');
             CREATE ROLE {r} LOGIN PASSWORD '{password}';
             GRANT USAGE ON SCHEMA {s} TO {r};
             GRANT SELECT ON {s}.users, {s}.nokey, {s}.guarded, {s}.big, {s}.keyed TO {r};",
            t0 = t[0],
            t1 = t[1],
            t2 = t[2],
            t3 = t[3],
            t4 = t[4],
            t5 = t[5],
            t6 = t[6],
            t7 = t[7],
        ),
    )
    .unwrap();
    let server: tokio_postgres::Config = schema.server().parse().unwrap();
    let host = match &server.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("{other:?}"),
    };
    let port = server.get_ports()[0];
    let url = format!("postgres://{r}:{password}@{host}:{port}/{}", server.get_dbname().unwrap());
    let as_role = format!(
        "host={host} port={port} user={r} password={password} dbname={}",
        server.get_dbname().unwrap()
    );
    // The policy bites: a read-write transaction of the same role sees no row of `guarded`.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let visible: i64 = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&as_role, tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(conn);
        let n = client.query_one(&format!("SELECT count(*) FROM {s}.guarded"), &[]).await.unwrap().get(0);
        drop(client);
        let _ = driver.await;
        n
    });
    assert_eq!(visible, 0, "outside a read-only transaction the policy hides the row");

    let mut options = PostgresOptions::parse(&url).unwrap().schema(s);
    options.max_value_size = 4096;
    assert!(!format!("{options:?}").contains(password), "{options:?}");
    assert!(!options.place().contains(password));
    let scanner = Scanner::new().unwrap();
    let report = scanner.scan_postgres(&options).unwrap();
    let mut found: Vec<(String, u64, u64)> = report
        .findings
        .iter()
        .map(|f| (f.location.to_string(), f.location.line(), f.location.column()))
        .collect();
    found.sort();
    let at = |table: &str, column: &str, key: &str| format!("postgres:{s}.{table}:{column}:{key}");
    assert_eq!(
        found,
        [
            (at("guarded", "secret", "id=7"), 1, 4),
            // A primary key holding a secret is not shown: the row is named by its ctid.
            (at("keyed", "note", "ctid=(0,1)"), 1, 1),
            (at("keyed", "token", "ctid=(0,1)"), 1, 1),
            (at("nokey", "tags", "ctid=(0,1)"), 2, 1),
            (at("users", "notes", "id=1"), 2, 8),
            (at("users", "profile", "id=1"), 1, 19),
        ],
        "{report:?}"
    );
    assert!(report.findings.iter().all(|f| f.rule == "github-classic"));
    let f = report.findings.iter().find(|f| f.location.to_string() == at("users", "notes", "id=1")).unwrap();
    let Location::Postgres { schema: sc, table, field, row, .. } = &f.location else { panic!() };
    assert_eq!((sc.as_str(), table.as_str(), field.as_str(), row.as_str()), (s, "users", "notes", "id=1"));
    // No privilege on `hidden`: skipped, the rest scanned; the oversized value: skipped.
    let skipped: Vec<(&str, &str)> =
        report.skipped.iter().map(|k| (k.what.as_str(), k.reason.as_str())).collect();
    assert!(
        skipped
            .iter()
            .any(|(w, why)| *w == format!("postgres:{s}.hidden") && why.contains("permission denied")),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(|(w, why)| *w == at("big", "body", "id=1") && why.contains("larger than 4096")),
        "{skipped:?}"
    );
    assert!(report.files >= 8 && report.bytes > 0, "{report:?}");
    // The password is in no output.
    let mut out = Vec::new();
    report.write_jsonl(&mut out).unwrap();
    report.write_text(&mut out, false).unwrap();
    report.write_sarif(&mut out, scanner.rule_set(), std::path::Path::new(".")).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains(password));
    assert!(
        out.contains(&format!("\"schema\":\"{s}\"")) || out.contains(&format!("\"schema\": \"{s}\"")),
        "{out}"
    );

    // The row limit stops the run and says so.
    let limited =
        scanner.scan_postgres(&PostgresOptions::parse(&url).unwrap().schema(s).max_rows(2)).unwrap();
    assert!(
        limited.skipped.iter().any(|k| k.reason.contains("limit") && k.reason.contains("not scanned")),
        "{:?}",
        limited.skipped
    );
    assert!(limited.findings.len() < report.findings.len());

    // A refused login: an error naming the database, never the password given.
    let wrong = "wr0ng-Passw0rd-7x";
    let e =
        scanner.scan_postgres(&PostgresOptions::parse(&url.replace(password, wrong)).unwrap()).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, ScanError::Postgres(_)), "{e:?}");
    assert!(!text.contains(wrong) && text.contains(&format!("{r}@")), "{text}");
    // A string that does not parse is not repeated.
    let e = PostgresOptions::parse("postgres://u:se=cret@host:notaport/db").unwrap_err();
    assert!(!e.to_string().contains("se=cret"), "{e}");
}
