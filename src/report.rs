//! What sanitizing did to an event for a destination: counts of paths
//! dropped, masked and transformed (always), and the paths themselves
//! when explaining. Paths and counts only, never values.

/// Counts for one event (or, summed, for a request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub dropped: u32,
    pub masked: u32,
    pub transformed: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.dropped += other.dropped;
        self.masked += other.masked;
        self.transformed += other.transformed;
    }

    /// The counts added since `before`.
    pub fn since(self, before: Tally) -> Tally {
        Tally {
            dropped: self.dropped.saturating_sub(before.dropped),
            masked: self.masked.saturating_sub(before.masked),
            transformed: self.transformed.saturating_sub(before.transformed),
        }
    }
}

/// The paths (`properties.email`, `context.page.url`, `products[].sku`)
/// dropped, masked and transformed, each once, in the event's order. A key
/// that does not look like a field name is shown as `[key]`
/// (`properties.[key].value`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths {
    pub dropped: Vec<String>,
    pub masked: Vec<String>,
    pub transformed: Vec<String>,
}

/// What happened at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Dropped,
    Masked,
    Transformed,
}

/// The path being written, and the paths noted so far.
#[derive(Debug, Clone, Default)]
pub struct Trail {
    path: String,
    pub paths: Paths,
}

impl Trail {
    /// Steps into member `name` (shown as `[key]` unless it looks like a
    /// field name: keys can carry PHI); returns where to cut back to.
    pub fn enter(&mut self, name: &[u8]) -> usize {
        let mark = self.path.len();
        crate::key_name::push_key(&mut self.path, name);
        mark
    }

    /// Steps into the elements of an array.
    pub fn enter_elements(&mut self) -> usize {
        let mark = self.path.len();
        self.path.push_str("[]");
        mark
    }

    pub fn leave(&mut self, mark: usize) {
        self.path.truncate(mark);
    }

    pub fn note(&mut self, done: Done) {
        let list = match done {
            Done::Dropped => &mut self.paths.dropped,
            Done::Masked => &mut self.paths.masked,
            Done::Transformed => &mut self.paths.transformed,
        };
        if !list.contains(&self.path) {
            list.push(self.path.clone());
        }
    }
}

/// Why a destination gets what it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Sanitized by its lists.
    Sanitized,
    /// Unrestricted, with a BAA: the event as it is.
    Unrestricted,
    /// The browser sends to it; the edge sends it nothing.
    ClientSide,
    /// Its `calls` leave out this call type.
    CallType,
    /// `integrations` does not route the event to it.
    Routing,
    /// Its `events` map drops this event or page name.
    EventName,
    /// It needs a purpose (`consent`) the visitor has not granted.
    Consent,
    /// A bot's event, and the policy's `bots` is `drop`.
    Bot,
}

impl Reason {
    pub fn sent(self) -> bool {
        matches!(self, Reason::Sanitized | Reason::Unrestricted)
    }

    pub fn text(self) -> &'static str {
        match self {
            Reason::Sanitized => "sent, sanitized by its lists",
            Reason::Unrestricted => "sent unchanged: unrestricted, with a BAA",
            Reason::ClientSide => "not sent: client-side, the browser sends to it",
            Reason::CallType => "not sent: its \"calls\" leave out this call type",
            Reason::Routing => "not sent: \"integrations\" does not route the event to it",
            Reason::EventName => "not sent: its \"events\" map drops this name",
            Reason::Consent => "not sent: consent: a purpose its \"consent\" lists is not granted",
            Reason::Bot => "not sent: a bot's event, and the policy's \"bots\" is \"drop\"",
        }
    }

    /// The reason as a code, for programs: `sanitized`, `consent`, ….
    pub fn code(self) -> &'static str {
        match self {
            Reason::Sanitized => "sanitized",
            Reason::Unrestricted => "unrestricted",
            Reason::ClientSide => "client_side",
            Reason::CallType => "call_type",
            Reason::Routing => "routing",
            Reason::EventName => "event_name",
            Reason::Consent => "consent",
            Reason::Bot => "bot",
        }
    }
}

/// What one destination gets of one event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub destination: String,
    pub reason: Reason,
    pub paths: Paths,
    /// For a destination that needs purposes: the decision on each.
    pub consent: Vec<crate::consent::Decision>,
    /// Why the event is a bot's, when the policy looks for bots and it is.
    pub bot: Option<crate::bots::Why>,
}
