"""Which object-store errors mean "the store is away for now" and which are an answer.

One place decides it, for the object storage's own retries (`atelier.objectstore`) and for
anything else that must tell an outage from a refusal: a refused connection, a dropped or timed
out request, or a 5xx / throttling answer is transient (the store restarts, fails over or is
overloaded; the same call succeeds later), while 403, 404 and other 4xx answers are not.
"""

from __future__ import annotations

from atelier.errors import in_chain

# S3 error codes that a store answers while it is overloaded or restarting.
TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"}
)


def _one_transient(error: BaseException) -> bool:
    # botocore is imported here, not at the top: producers load this module without it.
    from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as StoreConnectionError

    if isinstance(error, StoreConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in TRANSIENT_CODES or int(status) >= 500
    return False


def is_transient_storage_error(error: BaseException) -> bool:
    """True when `error`, or the error it was raised from, is an object-store outage.

    The chain is followed because boto3's transfer manager re-raises a client error as its own
    `S3UploadFailedError`, keeping the original only as the context."""
    return in_chain(error, _one_transient)
