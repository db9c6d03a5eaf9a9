//! Log lines on stderr. By default an operator sees one human line per event — `WARNING: emergency
//! declared (credential=billing-api/aws-key, …)`, no timestamp, no module path — for warnings and
//! errors only (`--quiet`: errors only). `-v` (info) and `-vv` (debug) show tracing's own lines, as
//! does `TOKENWARD_LOG` (a full filter). Never on stdout: what a command prints there (`--format json`)
//! stays its own.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::Global;

/// Installs the subscriber the flags ask for.
pub(crate) fn init(g: &Global) {
    let (level, lines) = match (g.quiet, g.verbose) {
        (true, _) => ("error", Lines::Human),
        (false, 0) => ("warn", Lines::Human),
        (false, 1) => ("info", Lines::Tracing),
        (false, _) => ("debug", Lines::Tracing),
    };
    let (filter, lines) = match EnvFilter::try_from_env("TOKENWARD_LOG") {
        Ok(f) => (f, Lines::Tracing),
        Err(_) => (EnvFilter::new(level), lines),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match lines {
        Lines::Human => builder.event_format(OneLine).init(),
        Lines::Tracing => builder.init(),
    }
}

enum Lines {
    /// [`OneLine`].
    Human,
    /// tracing's own format: time, level, target, fields.
    Tracing,
}

/// `LEVEL: message (field=value, …)`.
struct OneLine;

impl<S, N> FormatEvent<S, N> for OneLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "info",
            _ => "debug",
        };
        write!(w, "{level}: {}", fields.message)?;
        if !fields.rest.is_empty() {
            write!(w, " ({})", fields.rest.join(", "))?;
        }
        writeln!(w)
    }
}

/// An event's message, and its other fields as `name=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.push(format!("{}={value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push(format!("{}={value:?}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_warning_is_one_human_line() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(Level::WARN)
            .event_format(OneLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(credential = "billing-api/aws-key", leaked = true, "emergency declared");
            tracing::error!(error = %"no answer", "rollback incomplete");
            tracing::info!("not shown");
        });
        let text = String::from_utf8_lossy(&buf.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        assert_eq!(
            text,
            "WARNING: emergency declared (credential=billing-api/aws-key, leaked=true)\n\
             ERROR: rollback incomplete (error=no answer)\n"
        );
    }
}
