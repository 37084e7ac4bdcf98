"""The job state machine, with fencing, so a job is never lost and never done twice. Every
write of a job's state is in this package (a test fails on a writer elsewhere): the transitions
of the worker holding a job (`holder`: its claim, heartbeat, loss and frame rows, success,
failure and release) and those of everyone else (`oversight`: the user's cancel; the reaper's
requeue, renewal and giving up; the worker's main process failing a killed process's jobs; a
batch's reuse of a finished twin).

A worker *claims* a job with a compare-and-set on its row: `queued` (or `running` with a lease
gone stale) becomes `running` and `attempts` goes up by one. That attempt number is the fencing
token: every later write (heartbeat, loss rows, success, failure) is conditioned on it, so a
worker that was presumed dead and comes back cannot overwrite the attempt that replaced it. What
others do to a job whose holder may be alive (the reaper's requeue and giving up, a claim giving
up on an exhausted job) is fenced on the attempt they saw and on its lease having lapsed, so a
slow holder that renewed its lease in between keeps its job. The worker's main process, failing
the jobs of a process it killed, fails only the attempts recorded as that process's, under the
killed task's id.

Leases are read and written by the database's clock (`atelier.dbclock`). Every write retries
across a short database outage (`atelier.dbretry`). Every transition that changes a row notifies
followers (`atelier.notify`) when it commits.
"""

from atelier.fences import Claim, ClaimOutcome, Lease, Seen, exhausted_reason
from atelier.jobs.holder import claim, fail, heartbeat, record_frames, release, succeed
from atelier.jobs.oversight import cancel, fail_held, give_up, renew, requeue, reuse

__all__ = [
    "Claim",
    "ClaimOutcome",
    "Lease",
    "Seen",
    "cancel",
    "claim",
    "exhausted_reason",
    "fail",
    "fail_held",
    "give_up",
    "heartbeat",
    "record_frames",
    "release",
    "renew",
    "requeue",
    "reuse",
    "succeed",
]
