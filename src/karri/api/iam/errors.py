"""IAM's and STS's words for authentication failures and malformed parameters."""

from __future__ import annotations

from karri.api.auth.errors import (
    AuthError,
    ExpiredToken,
    InvalidToken,
    MissingAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
)
from karri.errors import CloudError

INVALID_TOKEN = "The security token included in the request is invalid."
# the parameter checks shared with EC2 speak EC2's codes: IAM calls them ValidationError
PARAMETER_CODES = frozenset({"InvalidParameterValue", "MissingParameter", "UnknownParameter"})


def auth_error(error: AuthError) -> CloudError:
    if isinstance(error, MissingAuthentication):
        return CloudError("MissingAuthenticationToken", error.message, 403)
    if isinstance(error, UnknownAccessKey | InvalidToken):
        return CloudError("InvalidClientTokenId", INVALID_TOKEN, 403)
    if isinstance(error, ExpiredToken):
        return CloudError("ExpiredToken", error.message, 403)
    if isinstance(error, SignatureMismatch):
        return CloudError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            403,
        )
    if isinstance(error, RequestExpired):
        return CloudError("SignatureDoesNotMatch", f"Signature expired: {error.message}", 403)
    return CloudError("IncompleteSignature", error.message, 400)


def in_iam_words(error: CloudError) -> CloudError:
    if error.code in PARAMETER_CODES:
        return CloudError("ValidationError", error.message, 400)
    return error
