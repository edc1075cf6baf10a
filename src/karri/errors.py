"""Errors that travel to the client as AWS error documents.

AWS error codes are the cloud's domain language (``InvalidKeyPair.NotFound``), so the
components raise them directly and the API layer renders them in its own protocol.
"""

from __future__ import annotations


class CloudError(Exception):
    """A failure the client caused or must know about, with AWS's code and status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def not_found(code: str, message: str) -> CloudError:
    return CloudError(code, message, 400)


def invalid_value(message: str) -> CloudError:
    return CloudError("InvalidParameterValue", message)


def missing_parameter(name: str) -> CloudError:
    return CloudError("MissingParameter", f"The request must contain the parameter {name}")


def invalid_combination(message: str) -> CloudError:
    return CloudError("InvalidParameterCombination", message)


def unsupported(message: str) -> CloudError:
    return CloudError("UnsupportedOperation", message)
