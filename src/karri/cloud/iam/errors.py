"""IAM's refusals, in its codes and statuses."""

from __future__ import annotations

from karri.errors import CloudError


def no_such_entity(message: str) -> CloudError:
    return CloudError("NoSuchEntity", message, 404)


def already_exists(message: str) -> CloudError:
    return CloudError("EntityAlreadyExists", message, 409)


def delete_conflict(message: str) -> CloudError:
    return CloudError("DeleteConflict", message, 409)


def limit_exceeded(message: str) -> CloudError:
    return CloudError("LimitExceeded", message, 409)


def validation_error(message: str) -> CloudError:
    return CloudError("ValidationError", message, 400)


def invalid_input(message: str) -> CloudError:
    return CloudError("InvalidInput", message, 400)
