//! The v1 → v2 transition of queries.
//!
//! Peers' local cases registered before their node was upgraded hold v1
//! tokens, and a node not yet upgraded still makes them. So a query sends,
//! after the selectors the agency asked about, the v1 token of every value
//! whose v1 form differs (its *companion*). Peers answer one result per
//! token sent; the agency must get one per selector it asked about, in its
//! order, so a hit on a companion counts as a hit on its selector.
//!
//! Companions count against the peers' limit of selectors per query: they
//! are sent, and each is looked up.

use super::{Hashed, Token};

/// The tokens a query sends: the selectors asked about, in the agency's
/// order, then the v1 companions of those that have one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTokens {
    tokens: Vec<Token>,
    /// How many selectors the agency asked about: the first `asked` tokens.
    asked: usize,
    /// For each companion, in order after the first `asked` tokens, the
    /// index of the selector it stands for.
    companion_of: Vec<usize>,
}

impl QueryTokens {
    /// `tokens` the agency sent already hashed (no companion can be made
    /// for them), then the clear values it sent, hashed.
    pub fn new(tokens: Vec<Token>, hashed: &[Hashed]) -> Self {
        let mut tokens = tokens;
        let first_hashed = tokens.len();
        tokens.extend(hashed.iter().map(|h| h.token));
        let asked = tokens.len();
        let mut companion_of = Vec::new();
        for (i, h) in hashed.iter().enumerate() {
            if let Some(v1) = h.v1 {
                tokens.push(v1);
                companion_of.push(first_hashed + i);
            }
        }
        Self {
            tokens,
            asked,
            companion_of,
        }
    }

    /// Every token to send, companions last.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// How many selectors the agency asked about.
    pub fn asked(&self) -> usize {
        self.asked
    }

    /// How many v1 companions follow them.
    pub fn companions(&self) -> usize {
        self.companion_of.len()
    }

    /// A peer's results, one per token sent, as one per selector asked
    /// about: a selector is a hit if it or its companion is. Results of
    /// another length are not an answer to this query and come back as
    /// they are, for the caller to refuse.
    pub fn fold_hits(&self, mut hits: Vec<bool>) -> Vec<bool> {
        if hits.len() != self.tokens.len() {
            return hits;
        }
        for (k, &of) in self.companion_of.iter().enumerate() {
            if hits[self.asked + k] {
                hits[of] = true;
            }
        }
        hits.truncate(self.asked);
        hits
    }
}
