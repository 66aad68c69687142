//! What `Sanitizer.take_report()` returns: counts by destination since
//! the last call, and the first refused lines' numbers with why (the
//! engine's reasons, never a value).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::ndjson::Outcome;
use crate::report::Tally;

/// Refused lines listed with their number and reason; past this only
/// counted.
const LISTED: usize = 100;

#[derive(Default)]
pub struct Counts {
    sent: u64,
    not_sent: u64,
    blank: u64,
    refused: u64,
    dropped: u64,
    masked: u64,
    transformed: u64,
    /// (line or row number from 1 in its call, why).
    first_refused: Vec<(u64, String)>,
}

impl Counts {
    pub fn add(&mut self, number: u64, outcome: Outcome) {
        match outcome {
            Outcome::Sent(_, tally) => {
                self.sent += 1;
                self.tally(tally);
            }
            Outcome::NotSent | Outcome::Unmapped => self.not_sent += 1,
            Outcome::Blank => self.blank += 1,
            Outcome::Refused(why) => self.refuse(number, why),
        }
    }

    fn tally(&mut self, t: Tally) {
        self.dropped += u64::from(t.dropped);
        self.masked += u64::from(t.masked);
        self.transformed += u64::from(t.transformed);
    }

    fn refuse(&mut self, number: u64, why: String) {
        self.refused += 1;
        if self.first_refused.len() < LISTED {
            self.first_refused.push((number, why));
        }
    }

    fn merge(&mut self, other: Counts) {
        self.sent += other.sent;
        self.not_sent += other.not_sent;
        self.blank += other.blank;
        self.refused += other.refused;
        self.dropped += other.dropped;
        self.masked += other.masked;
        self.transformed += other.transformed;
        let room = LISTED.saturating_sub(self.first_refused.len());
        self.first_refused
            .extend(other.first_refused.into_iter().take(room));
    }
}

#[derive(Default)]
pub struct Report {
    by_destination: Vec<(String, Counts)>,
}

impl Report {
    fn counts(&mut self, destination: &str) -> &mut Counts {
        let i = match self
            .by_destination
            .iter()
            .position(|(d, _)| d == destination)
        {
            Some(i) => i,
            None => {
                self.by_destination
                    .push((destination.to_owned(), Counts::default()));
                self.by_destination.len() - 1
            }
        };
        &mut self.by_destination[i].1
    }

    pub fn merge(&mut self, destination: &str, counts: Counts) {
        self.counts(destination).merge(counts);
    }

    /// One event of `sanitize()`.
    pub fn event(&mut self, destination: &str, sent: bool, tally: Tally) {
        let c = self.counts(destination);
        if sent {
            c.sent += 1;
            c.tally(tally);
        } else {
            c.not_sent += 1;
        }
    }

    /// One event `sanitize()` refused (numbered 0: it has no line).
    pub fn refused_event(&mut self, destination: &str, why: &str) {
        self.counts(destination).refuse(0, why.to_owned());
    }

    pub fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (destination, c) in &self.by_destination {
            let d = PyDict::new(py);
            d.set_item("sent", c.sent)?;
            d.set_item("not_sent", c.not_sent)?;
            d.set_item("blank", c.blank)?;
            d.set_item("refused", c.refused)?;
            d.set_item("dropped", c.dropped)?;
            d.set_item("masked", c.masked)?;
            d.set_item("transformed", c.transformed)?;
            d.set_item("first_refused", c.first_refused.clone())?;
            out.set_item(destination, d)?;
        }
        Ok(out)
    }
}
