//! IAM (awsQuery, version 2010-05-08). Operations arrive with the IAM issue; until then
//! every action answers AWS's unknown-action error from the dispatch table.
