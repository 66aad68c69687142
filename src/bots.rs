//! Bots: whether a request or an event comes from a crawler, an uptime
//! checker, a headless browser or a command-line client, by a documented
//! list of user-agent tokens and by Cloudflare Bot Management's verdict;
//! and what the policy's `bots` mode does with such events.
//!
//! A user agent is read up to [`MAX_USER_AGENT_BYTES`], ASCII case
//! ignored. A token of [`TOKENS`] matches where it starts a word (at the
//! start, or after a character that is not an ASCII letter or digit) and,
//! unless it ends in `/`, ends one too: `curl/` matches `curl/8.4.0`,
//! `googlebot` matches `Googlebot/2.1` and `Googlebot-Image`, but neither
//! matches inside a longer word. The generic words of [`GENERIC`] match
//! as whole words (`Better Uptime Bot`), or at the end of a word written
//! in camel case (`SomeNewBot`, a capital after a lower-case letter): so
//! a `CUBOT` or `Cubot` phone is no bot.

use std::borrow::Cow;

use crate::event::{Event, Field};
use crate::json::{Kind, Reader, SyntaxError};

/// What the policy does with a bot's events (`bots`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Bots are not looked for: every event is handled alike.
    #[default]
    Allow,
    /// A bot's events get `context.bot: true`, for the lists to govern.
    Flag,
    /// A bot's events go to no destination.
    Drop,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Allow, Mode::Flag, Mode::Drop];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Allow => "allow",
            Mode::Flag => "flag",
            Mode::Drop => "drop",
        }
    }

    /// The mode of this exact name (lower case only).
    pub fn parse(name: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How much of a user agent is read: real ones are a few hundred bytes.
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// A Cloudflare bot score below this is automated traffic.
pub const AUTOMATED_BELOW: u8 = 30;

/// What kind of software a token names (for the documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Software {
    Crawler,
    Uptime,
    Headless,
    Client,
}

/// The user-agent tokens of known bots, lower case.
pub const TOKENS: &[(&str, Software)] = &[
    // Search, social, SEO and AI crawlers and link previewers.
    ("googlebot", Software::Crawler),
    ("google-inspectiontool", Software::Crawler),
    ("googleother", Software::Crawler),
    ("storebot-google", Software::Crawler),
    ("adsbot-google", Software::Crawler),
    ("mediapartners-google", Software::Crawler),
    ("apis-google", Software::Crawler),
    ("feedfetcher-google", Software::Crawler),
    ("bingbot", Software::Crawler),
    ("bingpreview", Software::Crawler),
    ("msnbot", Software::Crawler),
    ("adidxbot", Software::Crawler),
    ("slurp", Software::Crawler),
    ("applebot", Software::Crawler),
    ("duckduckbot", Software::Crawler),
    ("duckassistbot", Software::Crawler),
    ("yandexbot", Software::Crawler),
    ("baiduspider", Software::Crawler),
    ("sogou", Software::Crawler),
    ("exabot", Software::Crawler),
    ("seznambot", Software::Crawler),
    ("qwantify", Software::Crawler),
    ("mojeekbot", Software::Crawler),
    ("coccocbot", Software::Crawler),
    ("petalbot", Software::Crawler),
    ("ahrefsbot", Software::Crawler),
    ("semrushbot", Software::Crawler),
    ("mj12bot", Software::Crawler),
    ("dotbot", Software::Crawler),
    ("rogerbot", Software::Crawler),
    ("blexbot", Software::Crawler),
    ("dataforseobot", Software::Crawler),
    ("screaming frog", Software::Crawler),
    ("siteimprove", Software::Crawler),
    ("cookiebot", Software::Crawler),
    ("gptbot", Software::Crawler),
    ("chatgpt-user", Software::Crawler),
    ("oai-searchbot", Software::Crawler),
    ("ccbot", Software::Crawler),
    ("claudebot", Software::Crawler),
    ("claude-web", Software::Crawler),
    ("claude-user", Software::Crawler),
    ("anthropic-ai", Software::Crawler),
    ("perplexitybot", Software::Crawler),
    ("perplexity-user", Software::Crawler),
    ("bytespider", Software::Crawler),
    ("amazonbot", Software::Crawler),
    ("facebookexternalhit", Software::Crawler),
    ("facebookcatalog", Software::Crawler),
    ("meta-externalagent", Software::Crawler),
    ("twitterbot", Software::Crawler),
    ("linkedinbot", Software::Crawler),
    ("slackbot", Software::Crawler),
    ("discordbot", Software::Crawler),
    ("telegrambot", Software::Crawler),
    ("pinterestbot", Software::Crawler),
    ("redditbot", Software::Crawler),
    ("applenewsbot", Software::Crawler),
    ("embedly", Software::Crawler),
    ("ia_archiver", Software::Crawler),
    // Uptime and synthetic monitoring.
    ("pingdom", Software::Uptime),
    ("uptimerobot", Software::Uptime),
    ("statuscake", Software::Uptime),
    ("site24x7", Software::Uptime),
    ("newrelicpinger", Software::Uptime),
    ("datadog/synthetics", Software::Uptime),
    ("datadogsynthetics", Software::Uptime),
    ("checkly", Software::Uptime),
    ("uptime-kuma", Software::Uptime),
    ("freshping", Software::Uptime),
    ("hetrixtools", Software::Uptime),
    ("updown.io", Software::Uptime),
    ("gtmetrix", Software::Uptime),
    ("ptst/", Software::Uptime),
    // Headless browsers and automation.
    ("headlesschrome", Software::Headless),
    ("headlessedg", Software::Headless),
    ("phantomjs", Software::Headless),
    ("slimerjs", Software::Headless),
    ("lighthouse", Software::Headless),
    ("selenium", Software::Headless),
    ("webdriver", Software::Headless),
    ("playwright", Software::Headless),
    ("puppeteer", Software::Headless),
    ("cypress", Software::Headless),
    ("htmlunit", Software::Headless),
    ("jsdom/", Software::Headless),
    // Command-line and programming-language HTTP clients.
    ("curl/", Software::Client),
    ("wget/", Software::Client),
    ("python-requests/", Software::Client),
    ("python-urllib/", Software::Client),
    ("python-httpx/", Software::Client),
    ("aiohttp/", Software::Client),
    ("scrapy/", Software::Client),
    ("go-http-client/", Software::Client),
    ("java/", Software::Client),
    ("apache-httpclient/", Software::Client),
    ("libwww-perl/", Software::Client),
    ("httpie/", Software::Client),
    ("node-fetch/", Software::Client),
    ("axios/", Software::Client),
    ("postmanruntime/", Software::Client),
    ("insomnia/", Software::Client),
    ("windowspowershell/", Software::Client),
];

/// For each byte, the tokens of [`TOKENS`] that start with it (bit `i`:
/// `TOKENS[i]`): a word is compared only with those, so a hostile user
/// agent of hundreds of one-letter words costs a few comparisons a word,
/// not one per token.
const BY_FIRST: [u128; 256] = {
    assert!(TOKENS.len() <= 128);
    let mut table = [0u128; 256];
    let mut i = 0;
    while i < TOKENS.len() {
        table[TOKENS[i].0.as_bytes()[0] as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// Words that name a bot of any make.
pub const GENERIC: [&str; 5] = ["bot", "bots", "robot", "crawler", "spider"];

/// Why an event is a bot's. Never holds the user agent itself: only the
/// token of the list that matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The request's user agent holds this token.
    UserAgent(&'static str),
    /// The event's `context.userAgent` holds this token.
    EventUserAgent(&'static str),
    /// Cloudflare Bot Management scored the request automated.
    Score(u8),
    /// Cloudflare Bot Management knows the request's sender as a bot.
    Verified,
}

impl Why {
    /// What decided, for programs: `userAgent`, `contextUserAgent`,
    /// `botScore` or `verifiedBot`.
    pub fn by(self) -> &'static str {
        match self {
            Why::UserAgent(_) => "userAgent",
            Why::EventUserAgent(_) => "contextUserAgent",
            Why::Score(_) => "botScore",
            Why::Verified => "verifiedBot",
        }
    }

    /// The token of the list that matched, for a user agent.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Why::UserAgent(t) | Why::EventUserAgent(t) => Some(t),
            _ => None,
        }
    }

    /// The bot score, for a score.
    pub fn score(self) -> Option<u8> {
        match self {
            Why::Score(s) => Some(s),
            _ => None,
        }
    }
}

/// What a request says of the software that sent it: its user agent and
/// Cloudflare Bot Management's verdict (where the zone has it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// The `User-Agent` header (only its first [`MAX_USER_AGENT_BYTES`]
    /// are read).
    pub user_agent: Option<String>,
    /// `request.cf.botManagement.score`: 1 (automated) to 99 (human).
    pub score: Option<u8>,
    /// `request.cf.botManagement.verifiedBot`.
    pub verified: bool,
}

impl Agent {
    /// A bot score given by a caller, or why not.
    ///
    /// # Errors
    /// A message saying what a score must be.
    pub fn score_of(score: i64) -> Result<u8, String> {
        match u8::try_from(score) {
            Ok(s @ 1..=99) => Ok(s),
            _ => Err("botScore must be an integer from 1 to 99".into()),
        }
    }

    /// Whether the request says it is a bot's, and why: a verified bot, a
    /// score below [`AUTOMATED_BELOW`], or a user agent of the list.
    pub fn judge(&self) -> Option<Why> {
        if self.verified {
            return Some(Why::Verified);
        }
        if let Some(s) = self.score.filter(|s| *s < AUTOMATED_BELOW) {
            return Some(Why::Score(s));
        }
        let ua = self.user_agent.as_deref()?;
        token(ua.as_bytes()).map(Why::UserAgent)
    }
}

/// The token of the list a user agent holds, if any (see the module's
/// documentation for how tokens match).
pub fn token(user_agent: &[u8]) -> Option<&'static str> {
    let ua = &user_agent[..user_agent.len().min(MAX_USER_AGENT_BYTES)];
    let mut lower = [0u8; MAX_USER_AGENT_BYTES];
    let lower = &mut lower[..ua.len()];
    for (l, b) in lower.iter_mut().zip(ua) {
        *l = b.to_ascii_lowercase();
    }
    let lower = &*lower;
    let mut start = 0;
    while start < lower.len() {
        // The next word: a run of ASCII letters and digits.
        if !lower[start].is_ascii_alphanumeric() {
            start += 1;
            continue;
        }
        let end = lower[start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(lower.len(), |n| start + n);
        let rest = &lower[start..];
        // In the list's order, as the tokens that start with this byte.
        let mut candidates = BY_FIRST[usize::from(lower[start])];
        while candidates != 0 {
            let (t, _) = TOKENS[candidates.trailing_zeros() as usize];
            candidates &= candidates - 1;
            let t_bytes = t.as_bytes();
            let ends_word = || {
                t_bytes.last().is_some_and(|b| !b.is_ascii_alphanumeric())
                    || rest
                        .get(t_bytes.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric())
            };
            if rest.starts_with(t_bytes) && ends_word() {
                return Some(t);
            }
        }
        if let Some(g) = generic(&ua[start..end], &lower[start..end]) {
            return Some(g);
        }
        start = end;
    }
    None
}

/// The generic word a word is, or ends with in camel case (`word` as
/// written, `lower` lower-cased).
fn generic(word: &[u8], lower: &[u8]) -> Option<&'static str> {
    GENERIC.into_iter().find(|g| {
        let g = g.as_bytes();
        if lower == g {
            return true;
        }
        let Some(at) = lower.len().checked_sub(g.len()).filter(|&at| at > 0) else {
            return false;
        };
        lower.ends_with(g) && word[at].is_ascii_uppercase() && word[at - 1].is_ascii_lowercase()
    })
}

/// What an event's `context` holds that bots care about: the user agent
/// a server-side SDK forwarded (`context.userAgent`, a string, its first
/// [`MAX_USER_AGENT_BYTES`]), and whether the client sent a `bot` member
/// of its own.
#[derive(Debug, Default)]
pub(crate) struct Context<'a> {
    pub(crate) user_agent: Option<Cow<'a, [u8]>>,
    pub(crate) bot: bool,
}

impl<'a> Context<'a> {
    /// Reads `context.userAgent` and `context.bot` of an event.
    ///
    /// # Errors
    /// Only a reader error on text read before (never for valid events).
    pub(crate) fn read(event: &Event<'a>) -> Result<Self, SyntaxError> {
        let mut out = Context::default();
        let Some(mut r) = event.context_reader()? else {
            return Ok(out);
        };
        let mut first = true;
        while let Some(key) = r.next_key(&mut first)? {
            let key = r.decode(key)?;
            match (&*key, r.peek_kind()?) {
                (b"userAgent", Kind::String) => {
                    let span = r.string()?;
                    out.user_agent = Some(match r.decode(span)? {
                        Cow::Borrowed(b) => Cow::Borrowed(&b[..b.len().min(MAX_USER_AGENT_BYTES)]),
                        Cow::Owned(mut v) => {
                            v.truncate(MAX_USER_AGENT_BYTES);
                            Cow::Owned(v)
                        }
                    });
                }
                (b"bot", _) => {
                    out.bot = true;
                    r.skip_value(3)?;
                }
                _ => {
                    r.skip_value(3)?;
                }
            }
        }
        Ok(out)
    }
}

/// The event's text with phimask's `context.bot`: the client's own `bot`
/// member of `context` removed, and `"bot":true` added to `context` (made
/// an object if it is missing or not one) when `bot`. `None` when there
/// is nothing to change.
///
/// # Errors
/// Only a reader error on text read before (never for valid events).
pub(crate) fn flagged(
    event: &Event<'_>,
    bot: bool,
    has_bot: bool,
) -> Result<Option<String>, SyntaxError> {
    if !bot && !has_bot {
        return Ok(None);
    }
    let src = event.src;
    let mut out: Vec<u8> = Vec::with_capacity(event.len() + 16);
    out.push(b'{');
    let mut has_context = false;
    for m in &event.members {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&src[m.key.start..m.key.end]);
        out.push(b':');
        if m.field != Field::Context {
            out.extend_from_slice(&src[m.value..m.end]);
            continue;
        }
        has_context = true;
        if m.kind != Kind::Object {
            if bot {
                out.extend_from_slice(b"{\"bot\":true}");
            } else {
                out.extend_from_slice(&src[m.value..m.end]);
            }
            continue;
        }
        out.push(b'{');
        let mut r = Reader::validated(src, m.value, crate::event::MAX_DEPTH);
        r.begin_object(2)?;
        let mut first = true;
        while let Some(key) = r.next_key(&mut first)? {
            let name = r.decode(key)?;
            let (start, end) = r.skip_value(3)?;
            if &*name == b"bot" {
                continue;
            }
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            out.extend_from_slice(&src[key.start..key.end]);
            out.push(b':');
            out.extend_from_slice(&src[start..end]);
        }
        if bot {
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            out.extend_from_slice(b"\"bot\":true");
        }
        out.push(b'}');
    }
    if bot && !has_context {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"context\":{\"bot\":true}");
    }
    out.push(b'}');
    // Slices of UTF-8 text cut at JSON token boundaries, and ASCII.
    Ok(String::from_utf8(out).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_whole_words() {
        assert_eq!(
            token(b"Mozilla/5.0 (compatible; Googlebot/2.1)"),
            Some("googlebot")
        );
        assert_eq!(token(b"Googlebot-Image/1.0"), Some("googlebot"));
        assert_eq!(token(b"curl/8.4.0"), Some("curl/"));
        assert_eq!(token(b"curly"), None);
        assert_eq!(token(b"xcurl/1"), None);
        assert_eq!(token(b"CUBOT_X30"), None);
        assert_eq!(token(b"Cubot"), None);
        assert_eq!(token(b"Better Uptime Bot"), Some("bot"));
        assert_eq!(token(b"SomeNewBot/1.0"), Some("bot"));
        assert_eq!(token(b"WebCrawler"), Some("crawler"));
        assert_eq!(token(b""), None);
    }

    #[test]
    fn only_the_first_kilobyte_is_read() {
        let mut ua = vec![b'a'; MAX_USER_AGENT_BYTES];
        ua.extend_from_slice(b" curl/8");
        assert_eq!(token(&ua), None);
        ua.drain(..10);
        assert_eq!(token(&ua), Some("curl/"));
    }

    #[test]
    fn scores() {
        assert_eq!(Agent::score_of(1), Ok(1));
        assert_eq!(Agent::score_of(99), Ok(99));
        assert!(Agent::score_of(0).is_err());
        assert!(Agent::score_of(100).is_err());
        assert!(Agent::score_of(-5).is_err());
        let a = |score| Agent {
            score: Some(score),
            ..Agent::default()
        };
        assert_eq!(a(29).judge(), Some(Why::Score(29)));
        assert_eq!(a(30).judge(), None);
    }
}
