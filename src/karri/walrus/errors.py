"""S3's error codes, raised by Walrus and rendered by the S3 API as they are."""

from __future__ import annotations

from karri.errors import CloudError


class S3Error(CloudError):
    """A CloudError with S3's code and status. ``delete_marker``: the version id of the
    delete marker that made a key or version unreadable (the S3 API says so in headers)."""

    def __init__(
        self, code: str, message: str, status: int = 400, *, delete_marker: str | None = None
    ) -> None:
        super().__init__(code, message, status)
        self.delete_marker = delete_marker


def no_such_bucket(name: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404)


def bucket_already_exists() -> S3Error:
    return S3Error(
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
        409,
    )


def no_such_key() -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", 404)


def no_such_version() -> S3Error:
    return S3Error("NoSuchVersion", "The specified version does not exist.", 404)


def no_such_upload() -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        404,
    )


def access_denied() -> S3Error:
    return S3Error("AccessDenied", "Access Denied", 403)


def invalid_argument(message: str) -> S3Error:
    return S3Error("InvalidArgument", message, 400)


def precondition_failed() -> S3Error:
    return S3Error(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412
    )


def invalid_part() -> S3Error:
    return S3Error(
        "InvalidPart",
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
        400,
    )
