//! Setting up the log output of a command.
//!
//! Every command of the binary, `enlace demo` and `enlace bench` start the
//! same `tracing` subscriber: `RUST_LOG` if set, else a default level, on
//! standard error, as text or JSON ([`LogFormat`], `[log] format` in the
//! configuration). It sits below the command tree and the bench, which
//! both call it, so neither has to import the other for it.
//!
//! Logs are evidence, and they carry strings that peers and clients chose
//! (a refusal's reason, a justification, a certificate name). In text, a
//! newline inside one would forge a line of its own, and an escape code
//! would rewrite the operator's terminal; so every control character and
//! every bidirectional-text control inside a line is written escaped
//! (`\u{1b}`), by the writer, whatever field it came from. JSON escapes
//! them by itself (the production configuration in `deploy/` uses it).

use std::io::Write;

use crate::config::LogFormat;

/// Sets up logging: `RUST_LOG` if set, else `default`.
pub fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: not in files, pipes or
    // journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || Escaping { ansi });
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Standard error, with what a line must not carry escaped (see the
/// module doc). The formatter hands over one whole line per write.
struct Escaping {
    /// Colour codes are the formatter's own: kept.
    ansi: bool,
}

impl Write for Escaping {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr()
            .lock()
            .write_all(&escape_line(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `line` with every control character but a final newline (and, with
/// `ansi`, the escape character of colour codes) and every bidirectional
/// control written as `\u{…}`.
fn escape_line(line: &[u8], ansi: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text.as_ref(), ""),
    };
    let mut out = String::with_capacity(line.len());
    for c in body.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        let control = c.is_control() && c != '\t' && !(ansi && c == '\u{1b}');
        if bidi || control {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push_str(end);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::escape_line;

    #[test]
    fn a_forged_line_or_escape_code_is_written_escaped() {
        let line = "WARN refused: bad\nINFO forged line \u{1b}[2J\u{202e}txet\n";
        let out = String::from_utf8(escape_line(line.as_bytes(), false)).unwrap();
        assert_eq!(
            out,
            "WARN refused: bad\\u{a}INFO forged line \\u{1b}[2J\\u{202e}txet\n"
        );
        assert_eq!(out.matches('\n').count(), 1, "one line stays one line");
        // Colour codes at a terminal are the formatter's own.
        let coloured = "\u{1b}[33mWARN\u{1b}[0m x\n";
        assert_eq!(escape_line(coloured.as_bytes(), true), coloured.as_bytes());
    }
}
