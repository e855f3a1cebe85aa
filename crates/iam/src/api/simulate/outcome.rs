//! What the evaluation of one action on one resource found, for the response.

use tresor_policy::Position;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Matched {
    pub(super) id: String,
    pub(super) source_type: &'static str,
    pub(super) span: Option<(Position, Position)>,
}

/// The decision on one resource.
pub(super) struct Outcome {
    pub(super) resource: String,
    pub(super) decision: &'static str,
    pub(super) matched: Vec<Matched>,
    pub(super) missing: Vec<String>,
    /// `AllowedByPermissionsBoundary`, when a boundary is in the simulation.
    pub(super) boundary_allows: Option<bool>,
}

impl Outcome {
    /// An upper estimate of the bytes this outcome takes in the response.
    pub(super) fn size(&self) -> usize {
        160 + self.resource.len()
            + self.matched.iter().map(|m| 240 + m.id.len()).sum::<usize>()
            + self.missing.iter().map(|k| 20 + k.len()).sum::<usize>()
    }
}
