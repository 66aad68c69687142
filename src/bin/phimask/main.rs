//! `phimask`: check a policy, explain what each destination gets of an
//! event, sanitize exported NDJSON event logs, and print the data map for
//! a compliance review, with the same engine the edge Worker runs; and
//! fetch a deployed Worker's evidence report.

mod check;
mod evidence;
mod explain;
mod failure;
mod input;
mod key;
mod map;
mod operator_key;
mod output;
mod sanitize;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use failure::USAGE;

const AFTER_HELP: &str = "\
The masking key comes from the environment variable PHI_MASKING_KEY or from
--key-file FILE, never from an argument (arguments show in the process list
and in shell history). evidence reads the Worker's operator key from
PHIMASK_OPERATOR_KEY, never from an argument either.

Exit status:
  0  done
  1  a policy is invalid, or an event was refused (sanitize goes on with
     the next line and says which lines at the end), or the Worker answered
     evidence with something other than the report (an error, a redirect)
  2  bad usage: an unknown option or destination, a key given as argument,
     a wrong date or URL, no operator key
  3  a file could not be read or written, the masking key is missing or
     unusable, or the Worker could not be reached or its answer read";

#[derive(Parser, Debug)]
#[command(
    name = "phimask",
    version,
    about = "Masks or blocks protected health information (PHI) in analytics events",
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate policy files: every error and warning with its JSON path
    Check(CheckArgs),
    /// Show, for each destination, whether an event is sent and which
    /// paths are dropped, masked or transformed
    Explain(ExplainArgs),
    /// Sanitize NDJSON events (one a line) for one destination, streaming
    Sanitize(SanitizeArgs),
    /// Print the data map of a policy (Markdown or HTML) for a compliance
    /// review
    Map(MapArgs),
    /// Fetch a deployed Worker's evidence report for a range of days (GET
    /// /evidence, with the operator key from PHIMASK_OPERATOR_KEY)
    Evidence(EvidenceArgs),
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Policy files (JSON)
    #[arg(required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
    /// Treat warnings as errors (exit 1 when any policy has one)
    #[arg(long)]
    deny_warnings: bool,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct KeyArgs {
    /// Read the masking key from FILE (one trailing newline is ignored)
    /// instead of PHI_MASKING_KEY
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct SignalArgs {
    /// As for a request with a Global Privacy Control signal (Sec-GPC: 1):
    /// the purposes the policy's consent.gpc lists are denied
    #[arg(long)]
    gpc: bool,
    /// As for a visitor in REGION (ISO 3166-2 such as US-WA, or a country
    /// such as US): its consent.regions mode applies
    #[arg(long, value_name = "REGION", value_parser = region)]
    region: Option<String>,
    /// As for a request with this User-Agent header: under the policy's
    /// bots, one of the documented list makes the event a bot's
    #[arg(long, value_name = "UA")]
    user_agent: Option<String>,
    /// As for a request Cloudflare Bot Management scored SCORE (1 to 99;
    /// below 30 is a bot)
    #[arg(long, value_name = "SCORE", value_parser = bot_score)]
    bot_score: Option<u8>,
}

impl SignalArgs {
    fn signals(self) -> phimask::Signals {
        phimask::Signals {
            gpc: self.gpc,
            region: self.region,
        }
    }

    fn agent(&self) -> phimask::Agent {
        phimask::Agent {
            user_agent: self.user_agent.clone(),
            score: self.bot_score,
            verified: false,
        }
    }
}

fn bot_score(score: &str) -> Result<u8, String> {
    let n: i64 = score
        .parse()
        .map_err(|_| "must be an integer from 1 to 99".to_owned())?;
    phimask::Agent::score_of(n).map_err(|_| "must be an integer from 1 to 99".to_owned())
}

fn region(code: &str) -> Result<String, String> {
    phimask::Signals::region_code(code)
}

#[derive(Args, Debug)]
struct ExplainArgs {
    /// The policy file (JSON)
    #[arg(long, short, value_name = "POLICY")]
    policy: PathBuf,
    /// A file holding one JSON event, or - for standard input
    #[arg(value_name = "EVENT", default_value = "-")]
    event: PathBuf,
    /// Also print what each destination receives (values, masked as
    /// sent); needs the masking key
    #[arg(long)]
    show_values: bool,
    /// Only this destination
    #[arg(long, short, value_name = "NAME")]
    destination: Option<String>,
    /// Print the explanation as JSON on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    signals: SignalArgs,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Args, Debug)]
struct SanitizeArgs {
    /// The policy file (JSON)
    #[arg(long, short, value_name = "POLICY")]
    policy: PathBuf,
    /// The destination to sanitize for
    #[arg(long, short, value_name = "NAME")]
    destination: String,
    /// NDJSON input files, read in order; - or none for standard input
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Write to FILE instead of standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// No progress line and no summary (refused lines are still reported)
    #[arg(long, short)]
    quiet: bool,
    /// Write each event as the destination's API takes it (its format's
    /// event object; for GA4 a one-event body), not as a Segment event
    #[arg(long)]
    native: bool,
    #[command(flatten)]
    signals: SignalArgs,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MapFormat {
    Markdown,
    Html,
}

#[derive(Args, Debug)]
struct MapArgs {
    /// The policy file (JSON)
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
    /// Output format
    #[arg(long, short, value_enum, default_value = "markdown")]
    format: MapFormat,
    /// Write to FILE instead of standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EvidenceFormat {
    Json,
    Markdown,
    Html,
}

#[derive(Args, Debug)]
struct EvidenceArgs {
    /// The Worker's address (https://HOST; http:// only for a Worker on
    /// this machine); /evidence is added to it
    #[arg(long, value_name = "URL")]
    url: String,
    /// The first day of the report (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: String,
    /// The last day of the report, included (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: String,
    /// The report's form: markdown to read, html to attach to a review,
    /// json for programs
    #[arg(long, short, value_enum, default_value = "markdown")]
    format: EvidenceFormat,
    /// Write to FILE (replaced whole, only once the report is complete)
    /// instead of standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Give up when the whole exchange takes longer than SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

fn main() -> ExitCode {
    // Before clap sees them: its errors quote the offending argument, and
    // that argument could be the key.
    if let Some(f) = key::refuse_key_arguments(std::env::args_os().skip(1))
        .or_else(|| operator_key::refuse_arguments(std::env::args_os().skip(1)))
    {
        return f.report();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let outcome = match cli.command {
        Command::Check(a) => check::run(&a.policies, a.deny_warnings, a.json),
        Command::Explain(a) => explain::run(&explain::Options {
            policy: a.policy,
            event: a.event,
            show_values: a.show_values,
            destination: a.destination,
            json: a.json,
            agent: a.signals.agent(),
            signals: a.signals.signals(),
            key_file: a.key.key_file,
        }),
        Command::Sanitize(a) => sanitize::run(&sanitize::Options {
            policy: a.policy,
            destination: a.destination,
            inputs: a.inputs,
            output: a.output,
            quiet: a.quiet,
            native: a.native,
            agent: a.signals.agent(),
            signals: a.signals.signals(),
            key_file: a.key.key_file,
        }),
        Command::Map(a) => map::run(&a.policy, matches!(a.format, MapFormat::Html), a.output),
        Command::Evidence(a) => evidence::run(&evidence::Options {
            url: a.url,
            from: a.from,
            to: a.to,
            format: match a.format {
                EvidenceFormat::Json => evidence::Format::Json,
                EvidenceFormat::Markdown => evidence::Format::Markdown,
                EvidenceFormat::Html => evidence::Format::Html,
            },
            output: a.output,
            timeout: a.timeout,
        }),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => f.report(),
    }
}
