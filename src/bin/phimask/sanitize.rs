//! `phimask sanitize`: NDJSON events in, the destination's sanitized
//! events out, one a line, streaming. A line that cannot be sanitized is
//! reported by its number (never echoed) and skipped; progress and a
//! summary go to stderr.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use phimask::ndjson::{self, sanitize_line, Lines, Target};
use phimask::policy::Connection;
use phimask::report::Tally;
use phimask::{Sanitizer, MAX_EVENT_BYTES};

use crate::failure::{note, Failure, Outcome, IO, REFUSED, USAGE};
use crate::input::{count, grouped, is_stdin, reason, shown};
use crate::key;

pub struct Options {
    pub policy: PathBuf,
    pub destination: String,
    pub inputs: Vec<PathBuf>,
    pub output: Option<PathBuf>,
    pub quiet: bool,
    /// Each event as its destination's API takes it, not as a Segment
    /// event.
    pub native: bool,
    /// The signals (GPC, region) every line is sanitized as if sent with.
    pub signals: phimask::Signals,
    /// The request's user agent and bot score, for the policy's `bots`.
    pub agent: phimask::Agent,
    pub key_file: Option<PathBuf>,
}

/// Refused lines listed one by one on stderr; past this only counted.
const LISTED: u64 = 100;

#[derive(Default)]
struct Counts {
    lines: u64,
    sent: u64,
    not_sent: u64,
    blank: u64,
    unmapped: u64,
    refused: u64,
    first_refused: Vec<String>,
    /// Paths dropped, masked and transformed, summed in u64 (a backfill
    /// can pass u32's range).
    dropped: u64,
    masked: u64,
    transformed: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Counts {
    fn add(&mut self, t: Tally) {
        self.dropped += u64::from(t.dropped);
        self.masked += u64::from(t.masked);
        self.transformed += u64::from(t.transformed);
    }
}

pub fn run(o: &Options) -> Outcome {
    let (policy, _) = crate::input::policy(&o.policy)?;
    let dest = crate::input::destination(&policy, &o.destination, true)?;
    if dest.connection == Connection::ClientSide {
        return Err(Failure::new(
            USAGE,
            format!(
                "{} is client-side: the browser sends to it, so phimask sends it nothing",
                dest.name
            ),
        ));
    }
    let key = key::load(o.key_file.as_deref())?;
    let sanitizer = key::sanitizer(&policy, key.as_deref())?;

    let mut out: BufWriter<Box<dyn Write>> = BufWriter::with_capacity(
        1 << 16,
        match &o.output {
            Some(path) => Box::new(File::create(path).map_err(|e| {
                Failure::new(IO, format!("cannot create {}: {}", shown(path), reason(&e)))
            })?),
            None => Box::new(io::stdout().lock()),
        },
    );
    let stdin = [PathBuf::from("-")];
    let inputs = if o.inputs.is_empty() {
        &stdin[..]
    } else {
        &o.inputs[..]
    };
    let mut counts = Counts::default();
    let mut progress = Progress::new(o.quiet);
    let start = Instant::now();
    let mut stopped = None;
    for input in inputs {
        let reader: Box<dyn BufRead> = if is_stdin(input) {
            Box::new(io::stdin().lock())
        } else {
            match File::open(input) {
                Ok(f) => Box::new(BufReader::with_capacity(1 << 16, f)),
                Err(e) => {
                    stopped = Some(Failure::new(
                        IO,
                        format!("cannot read {}: {}", shown(input), reason(&e)),
                    ));
                    break;
                }
            }
        };
        let label = if inputs.len() > 1 {
            format!("{} ", shown(input))
        } else {
            String::new()
        };
        let target = Target {
            name: &dest.name,
            native: o.native.then_some(dest.format),
            signals: &o.signals,
            agent: &o.agent,
        };
        if let Err(f) = stream(
            &sanitizer,
            &target,
            reader,
            &mut out,
            &label,
            &mut counts,
            &mut progress,
        ) {
            stopped = Some(f);
            break;
        }
    }
    if stopped.is_none() {
        if let Err(e) = out.flush() {
            stopped = Some(write_failure(&e));
        }
    }
    progress.clear();
    if !o.quiet {
        summary(&dest.name, &counts, start.elapsed());
    }
    match stopped {
        Some(f) => Err(f),
        None if counts.refused > 0 => Ok(REFUSED),
        None => Ok(0),
    }
}

fn write_failure(e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::new(
            IO,
            "stopped: the output was closed before every event was written",
        )
    } else {
        Failure::new(IO, format!("cannot write the output: {}", reason(e)))
    }
}

/// Sanitizes every line of one input.
fn stream(
    sanitizer: &Sanitizer,
    target: &Target<'_>,
    reader: Box<dyn BufRead>,
    out: &mut impl Write,
    label: &str,
    counts: &mut Counts,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let mut lines = Lines::new(reader, MAX_EVENT_BYTES);
    let mut number = 0u64;
    let base = counts.bytes_in;
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::new(
                    IO,
                    format!("cannot read {}: {}", label.trim_end(), reason(&e)),
                ))
            }
        };
        number += 1;
        counts.lines += 1;
        let refusal = match sanitize_line(sanitizer, target, line) {
            ndjson::Outcome::Sent(line, tally) => {
                out.write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| write_failure(&e))?;
                counts.sent += 1;
                counts.bytes_out += line.len() as u64 + 1;
                counts.add(tally);
                None
            }
            ndjson::Outcome::NotSent => {
                counts.not_sent += 1;
                None
            }
            ndjson::Outcome::Unmapped => {
                counts.unmapped += 1;
                None
            }
            ndjson::Outcome::Blank => {
                counts.blank += 1;
                None
            }
            ndjson::Outcome::Refused(why) => Some(why),
        };
        if let Some(why) = refusal {
            counts.refused += 1;
            let at = format!("{label}line {number}");
            if counts.refused <= LISTED {
                progress.clear();
                note(&format!("{at}: refused, not sent: {why}"));
            }
            if counts.first_refused.len() < 10 {
                counts.first_refused.push(at);
            }
        }
        counts.bytes_in = base + lines.bytes;
        progress.tick(counts);
    }
    Ok(())
}

/// The progress line: after the first second, once a second; rewritten
/// in place on a terminal, a line each time otherwise (a log).
struct Progress {
    quiet: bool,
    terminal: bool,
    start: Instant,
    last: Instant,
    on_screen: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Progress {
            quiet,
            terminal: io::stderr().is_terminal(),
            start: now,
            last: now,
            on_screen: false,
        }
    }

    fn tick(&mut self, c: &Counts) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_secs(1) {
            return;
        }
        self.last = now;
        let line = format!(
            "{}, {} read, {}",
            count(c.lines, "line"),
            megabytes(c.bytes_in),
            rate(c.bytes_in, now.duration_since(self.start))
        );
        let mut err = io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\rphimask: {line}\x1b[K");
            self.on_screen = true;
        } else {
            let _ = writeln!(err, "phimask: {line}");
        }
    }

    /// Ends a progress line left on the terminal, so the next message
    /// starts on a line of its own.
    fn clear(&mut self) {
        if self.on_screen {
            let _ = write!(io::stderr().lock(), "\r\x1b[K");
            self.on_screen = false;
        }
    }
}

fn megabytes(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs)
}

fn summary(dest: &str, c: &Counts, elapsed: Duration) {
    let mut parts = vec![format!("{} sent", grouped(c.sent))];
    if c.not_sent > 0 {
        parts.push(format!(
            "{} not for {dest} (its policy sends it nothing of them)",
            grouped(c.not_sent)
        ));
    }
    if c.unmapped > 0 {
        parts.push(format!(
            "{} with no place in {dest}'s API (its format maps no such call, or no user or device ID)",
            grouped(c.unmapped)
        ));
    }
    if c.refused > 0 {
        let more = if c.refused > c.first_refused.len() as u64 {
            ", …"
        } else {
            ""
        };
        parts.push(format!(
            "{} refused ({}{more})",
            grouped(c.refused),
            c.first_refused.join(", ")
        ));
    }
    if c.blank > 0 {
        parts.push(format!("{} blank", grouped(c.blank)));
    }
    note(&format!(
        "{dest}: {} in {:.2} s ({}, {}): {}; {} written; in the events sent: {} dropped, {} masked, {} transformed",
        count(c.lines, "line"),
        elapsed.as_secs_f64(),
        megabytes(c.bytes_in),
        rate(c.bytes_in, elapsed),
        parts.join(", "),
        megabytes(c.bytes_out),
        count(c.dropped, "path"),
        grouped(c.masked),
        grouped(c.transformed),
    ));
    if c.refused > LISTED {
        note(&format!(
            "{} more refused lines were not listed one by one",
            grouped(c.refused - LISTED)
        ));
    }
}
