"""Splits a perf profile of the server into the stages of a request (used by bench/stages.sh).

Reads `perf script -F comm,tid,ip,sym,dso --no-inline` output and assigns every sample (one
call stack) to the first stage below that any of its frames belongs to, so a stage's share
includes what it calls (allocations, the kernel's work for its system calls), and a sample
counts once:

  audit            building and writing the request's audit records (tresor_server::audit,
                   the KMS hop record, the Secrets Manager read facts), and the audit threads
  sigv4            SigV4 verification and the credential lookup (auth::authenticate)
  policy           identity, resource and key policy evaluation (Authorizer::authorize)
  kms              the KMS key record, the data key unwrap and AES-GCM (envelope::decrypt,
                   keys::decrypt_blob, ring's AEAD)
  operation        the rest of the operation: the JSON request decoded, the record looked
                   up, the JSON answer written
  kernel-send      the response's writev (on loopback this includes the kernel's delivery
                   to the load generator)
  kernel-recv      the request's recv
  kernel-other     other kernel time (scheduling, interrupts)
  http             hyper and the handler's glue around the operation
  other            the rest (other threads, the runtime's idle loop)

Usage: python3 bench/stages.py PERF_SCRIPT_TXT [CPU_US_PER_REQUEST]
With CPU_US_PER_REQUEST (the server's CPU time per answered request over the same run), the
shares are also printed as microseconds per request, and a last line gives the sum of the
audit, sigv4, policy and kms stages in microseconds.
"""

import sys
from collections import Counter

STAGES = [
    (
        "audit",
        (
            "tresor_server::audit::",
            "tresor_kms::envelope::note_hop",
            "AuditFacts::secret_read",
            "tresor_cloudtrail::",
        ),
    ),
    ("sigv4", ("tresor_server::auth::authenticate",)),
    ("policy", ("tresor_core::authz::Authorizer::authorize", "tresor_policy::")),
    (
        "kms",
        (
            "tresor_kms::envelope::decrypt",
            "tresor_kms::keys::decrypt_blob",
            "ring::aead",
            "tresor_crypto::aead",
        ),
    ),
    (
        "operation",
        (
            "tresor_core::audit::with_pending",
            "tresor_server::dispatch::",
            "tresor_secretsmanager::",
            "tresor_ssm::",
            "tresor_kms::",
            "tresor_wire::json",
            "json_parameters",
        ),
    ),
    ("kernel-send", ("__GI___writev", "do_writev")),
    ("kernel-recv", ("__libc_recv", "__x64_sys_recvfrom")),
    ("kernel-other", ("[kernel.kallsyms]",)),
    ("http", ("hyper::", "tresor_server::")),
]
# The stages that are a read's security work (see main).
SECURITY = ("audit", "sigv4", "policy", "kms")
# Threads whose every sample is the audit log's (the segment indexer, syncer and writers).
AUDIT_THREADS = ("tresor-audit",)


def samples(lines):
    """Yields (thread name, frames) per sample of `perf script` output."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif line[0] in "\t ":
            frames.append(line.strip())
        else:
            if comm is not None:
                yield comm, frames
            comm, frames = line.split()[0], []
    if comm is not None:
        yield comm, frames


def stage_of(comm, frames):
    if comm.startswith(AUDIT_THREADS):
        return "audit"
    for name, patterns in STAGES:
        if any(p in f for f in frames for p in patterns):
            return name
    return "other"


def split(lines):
    counts = Counter(stage_of(comm, frames) for comm, frames in samples(lines))
    return counts, sum(counts.values())


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    with open(sys.argv[1], errors="replace") as f:
        counts, total = split(f)
    if total == 0:
        sys.exit("no samples")
    per_request = float(sys.argv[2]) if len(sys.argv) == 3 else None
    order = [name for name, _ in STAGES] + ["other"]
    for name in order:
        share = counts.get(name, 0) / total
        line = f"  {name:<13} {100 * share:5.1f} %"
        if per_request is not None:
            line += f"  {share * per_request:6.1f} us/request"
        print(line)
    print(f"  ({total} samples)")
    if per_request is not None:
        # What the "nothing traded for it" keeps: the stages that are the security
        # work of a read rather than HTTP's, the kernel's or the operation's own.
        security = sum(counts.get(n, 0) for n in SECURITY) / total * per_request
        print(f"security work ({', '.join(SECURITY)}): {security:.1f}")


if __name__ == "__main__":
    main()
