//! The simulator's constants: the model's constraints on its inputs and tresor's own bounds.

/// `policyDocumentType` of the simulation inputs: 1–131,072 characters, whitespace included,
/// of `[\u0009\u000A\u000D\u0020-\u00FF]` (IAM API Reference, SimulateCustomPolicy).
pub(crate) const SIMULATION_POLICY_MAX: usize = 131_072;
pub(crate) const POLICY_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u00FF]+";

/// tresor's own bounds on one simulation (the API sets none on these list sizes): beyond
/// them a request is refused with `InvalidInput` before anything is evaluated.
pub(crate) const MAX_ACTIONS: usize = 1000;
pub(crate) const MAX_RESOURCES: usize = 1000;
pub(crate) const MAX_CONTEXT_ENTRIES: usize = 1000;

/// Work and size of one page. Results are added while the page is within both budgets (at
/// least one per page); the rest follows through `Marker` ("IAM might return fewer results,
/// even when there are more results available", IAM API Reference, SimulateCustomPolicy).
pub(crate) const PAGE_TIME: std::time::Duration = std::time::Duration::from_millis(1000);
pub(crate) const PAGE_BYTES: usize = 2 << 20;
/// One action's result cannot be split across pages: beyond these it is refused.
pub(crate) const RESULT_TIME: std::time::Duration = std::time::Duration::from_secs(20);
pub(crate) const RESULT_BYTES: usize = 16 << 20;

/// The session name of a simulated role session (`aws:userid` = `AROA…:<this>`).
pub(crate) const SIMULATED_SESSION: &str = "SimulatedSession";

/// `SourcePolicyType` of `PolicyInputList` / `PermissionsBoundaryPolicyInputList` documents as
/// IAM reports it (outside the model's enum; SDKs keep it as an unknown value).
pub(crate) const INPUT_POLICY_TYPE: &str = "IAM Policy";

pub(crate) const CONTEXT_KEY_TYPES: &[&str] = &[
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
];
