"""Why a request failed authentication; each API maps these to its own error codes."""

from __future__ import annotations


class AuthError(Exception):
    """Base of every authentication failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingAuthentication(AuthError):
    """The request carries no signature at all."""


class MalformedAuthentication(AuthError):
    """A signature is present but its parts cannot be read."""


class UnknownAccessKey(AuthError):
    """The access key id is not one the cloud issued (or it is disabled)."""


class SignatureMismatch(AuthError):
    """The signature does not match the request and the key's secret."""


class WrongScope(AuthError):
    """SigV4's credential scope names another region or service than the endpoint's."""

    def __init__(self, scope_region: str, scope_service: str, region: str, service: str):
        if scope_service != service:
            message = f"incorrect service '{scope_service}'. This endpoint belongs to '{service}'."
        else:
            message = f"the region '{scope_region}' is wrong; expecting '{region}'"
        super().__init__(message)
        self.region = region  # the endpoint's
        self.service = service
        self.wrong_service = scope_service != service


class RequestExpired(AuthError):
    """The request's timestamp is too far from now, or a presigned URL has expired."""


class InvalidToken(AuthError):
    """A session token that is not the key's, or one given with a long-term key."""


class ExpiredToken(AuthError):
    """Temporary credentials past their expiry."""
