//! Compiles allowlists into tries and `events` maps into sorted tables,
//! once per sanitizer, so the per-event walk only looks up keys.

use crate::action::scan::Scan;
use crate::inventory::Named;
use crate::path::Step;
use crate::policy::{Action, Allowlists, List, NameRule, Names, Policy, Rule, ScanRule, ANY_NAME};

/// A trie node: the rule at this path (if any), the keys below it, and the
/// `[]` step below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub action: Option<Action>,
    /// Sorted by length, then bytes ([`by_length`]), for binary search.
    keys: Vec<(Box<[u8]>, Node)>,
    pub elements: Option<Box<Node>>,
}

/// Keys ordered by length first: most comparisons of a lookup are then
/// settled without comparing bytes (a call to `memcmp` in wasm).
#[inline(always)]
fn by_length(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Node {
    /// Whether nothing is below this node (its rule covers the whole value).
    pub fn is_leaf(&self) -> bool {
        self.keys.is_empty() && self.elements.is_none()
    }

    /// Whether some key step is below this node.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The node for member `key`, if a rule names it.
    pub fn child(&self, key: &[u8]) -> Option<&Node> {
        self.keys
            .binary_search_by(|(k, _)| by_length(k, key))
            .ok()
            .map(|i| &self.keys[i].1)
    }

    fn child_mut(&mut self, key: &[u8]) -> &mut Node {
        let i = match self.keys.binary_search_by(|(k, _)| by_length(k, key)) {
            Ok(i) => i,
            Err(i) => {
                self.keys.insert(i, (key.into(), Node::default()));
                i
            }
        };
        &mut self.keys[i].1
    }

    fn insert(&mut self, steps: &[Step], action: Action) {
        let mut node = self;
        for step in steps {
            node = match step {
                Step::Key(k) => node.child_mut(k.as_bytes()),
                Step::Elements => node.elements.get_or_insert_with(Default::default),
            };
        }
        node.action = Some(action);
    }
}

/// Builds the trie of one list; `allow` rules without a scan of their own
/// get the policy-wide `scan`.
pub fn trie(rules: &[Rule], scan: Option<Scan>) -> Node {
    let mut root = Node::default();
    for rule in rules {
        let action = match rule.action {
            Action::Allow {
                scan: ScanRule::Default,
            } => Action::Allow {
                scan: scan.map_or(ScanRule::Off, ScanRule::On),
            },
            other => other,
        };
        root.insert(&rule.steps, action);
    }
    root
}

/// The tries of one restricted destination.
#[derive(Debug, Clone)]
pub struct Tries {
    pub event: Node,
    pub user: Node,
    pub group: Node,
    /// The context list, with `traits` governed by the user list.
    pub context: Node,
    /// Object members of `integrations`.
    pub integrations: Node,
}

impl Tries {
    pub fn new(lists: &Allowlists, scan: Option<Scan>) -> Self {
        let user = trie(lists.list(List::UserProperties), scan);
        let mut context = trie(lists.list(List::Context), scan);
        // Validation refuses context rules on `traits`, so this replaces
        // nothing: context.traits follows user_properties alone.
        *context.child_mut(b"traits") = user.clone();
        Tries {
            event: trie(lists.list(List::EventProperties), scan),
            user,
            group: trie(lists.list(List::GroupProperties), scan),
            context,
            integrations: trie(lists.list(List::Integrations), scan),
        }
    }
}

/// The union of every list of a policy (the environment's and each
/// destination's): what some rule names, for the inventory of paths none
/// does.
pub(crate) fn named(policy: &Policy) -> Named {
    let union = |list: List| -> Node {
        let mut rules: Vec<Rule> = policy.allowlists.list(list).to_vec();
        for d in &policy.destinations {
            rules.extend_from_slice(d.allowlists.list(list));
        }
        trie(&rules, None)
    };
    let user = union(List::UserProperties);
    let mut context = union(List::Context);
    // As for a destination's tries: context.traits follows user_properties.
    *context.child_mut(b"traits") = user.clone();
    Named {
        event: union(List::EventProperties),
        user,
        group: union(List::GroupProperties),
        context,
    }
}

/// An `events` map compiled: names sorted ([`by_length`]) for binary search, and the rule
/// for names not listed (`*`, or else allow).
#[derive(Debug, Clone, PartialEq)]
pub struct NameTable {
    listed: Vec<(Box<[u8]>, NameRule)>,
    other: NameRule,
}

impl NameTable {
    pub fn new(names: &Names) -> Self {
        // Inserted in order (names are unique), like the trie's keys.
        let mut listed: Vec<(Box<[u8]>, NameRule)> = Vec::with_capacity(names.0.len());
        for (name, rule) in names.0.iter().filter(|(n, _)| n != ANY_NAME) {
            let key = name.as_bytes();
            if let Err(i) = listed.binary_search_by(|(n, _)| by_length(n, key)) {
                listed.insert(i, (key.into(), rule.clone()));
            }
        }
        let other = names
            .0
            .iter()
            .find(|(n, _)| n == ANY_NAME)
            .map_or(NameRule::Allow, |(_, r)| r.clone());
        NameTable { listed, other }
    }

    /// Where the map lists a name explicitly (`*` aside), if it does.
    pub fn listed(&self, name: &[u8]) -> Option<usize> {
        self.listed
            .binary_search_by(|(n, _)| by_length(n, name))
            .ok()
    }

    /// A listed name ([`NameTable::listed`]) as a destination is sent it:
    /// its new name under `rename` when `renamed` (the destination applies
    /// the map), else the name as listed.
    pub fn listed_name(&self, at: usize, renamed: bool) -> &str {
        match self.listed.get(at) {
            Some((_, NameRule::Rename(to))) if renamed => to,
            // Listed names come from the policy's JSON keys: UTF-8.
            Some((name, _)) => std::str::from_utf8(name).unwrap_or_default(),
            None => "",
        }
    }

    /// The rule for a name.
    pub fn rule(&self, name: &[u8]) -> &NameRule {
        match self.listed.binary_search_by(|(n, _)| by_length(n, name)) {
            Ok(i) => &self.listed[i].1,
            Err(_) => &self.other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::parse;

    #[test]
    fn builds_nested_rules() {
        let rules: Vec<Rule> = [
            ("address", Action::ALLOW),
            ("address.zip", Action::Mask(None)),
            ("products[].sku", Action::ALLOW),
        ]
        .into_iter()
        .map(|(p, action)| Rule {
            path: p.into(),
            steps: parse(p).unwrap(),
            action,
        })
        .collect();
        let root = trie(&rules, None);
        let address = root.child(b"address").unwrap();
        let copy = Some(Action::Allow {
            scan: ScanRule::Off,
        });
        assert_eq!(address.action, copy);
        assert_eq!(
            address.child(b"zip").unwrap().action,
            Some(Action::Mask(None))
        );
        let products = root.child(b"products").unwrap();
        assert_eq!(products.action, None);
        let sku = products.elements.as_ref().unwrap().child(b"sku").unwrap();
        assert_eq!(sku.action, copy);
        assert!(root.child(b"missing").is_none());
    }
}
