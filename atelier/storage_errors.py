"""Which object-store errors mean "the store is away for now" and which are an answer.

One place decides it, for the object storage's own retries (`atelier.objectstore`) and for
anything else that must tell an outage from a refusal: a refused connection, a dropped or timed
out request, or a 5xx / throttling answer is transient (the store restarts, fails over or is
overloaded; the same call succeeds later), while 403, 404 and other 4xx answers are not. A
store that answers it is full (a quota, or 507 Insufficient Storage) is an outage too: the same
call succeeds once space is freed.
"""

from __future__ import annotations

from atelier.errors import in_chain

# S3 error codes that a store answers while it is overloaded or restarting.
TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"}
)
# S3 error codes (and the HTTP status) of a store, or a bucket's quota, that is full.
FULL_CODES = frozenset({"QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"})
INSUFFICIENT_STORAGE = 507


def _answer(error: BaseException) -> tuple[str, int] | None:
    """The error code and HTTP status of a store's answer, when `error` is one."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return None
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code, int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def store_full(error: BaseException) -> bool:
    """Whether `error` itself is a store's answer that it (or the bucket's quota) is full."""
    answer = _answer(error)
    return answer is not None and (answer[0] in FULL_CODES or answer[1] == INSUFFICIENT_STORAGE)


def one_transient(error: BaseException) -> bool:
    """Whether `error` itself (not its chain) is an outage of the store or a full store."""
    # botocore is imported here, not at the top: producers load this module without it.
    from botocore.exceptions import ConnectionError as StoreConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError

    if isinstance(error, StoreConnectionError | HTTPClientError | IncompleteReadError):
        return True
    answer = _answer(error)
    if answer is None:
        return False
    code, status = answer
    return code in TRANSIENT_CODES or code in FULL_CODES or status >= 500


def is_transient_storage_error(error: BaseException) -> bool:
    """True when `error`, or the error it was raised from, is an object-store outage.

    The chain is followed because boto3's transfer manager re-raises a client error as its own
    `S3UploadFailedError`, keeping the original only as the context."""
    return in_chain(error, one_transient)
