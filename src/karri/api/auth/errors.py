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


class RequestExpired(AuthError):
    """The request's timestamp is too far from now, or a presigned URL has expired."""
