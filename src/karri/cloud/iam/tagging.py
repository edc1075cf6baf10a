"""Tags of the entities that keep them (users, roles, customer managed policies, instance
profiles): Tag*, Untag*, List*Tags share one rule set, that of ``check_tags``. A policy is
named by its ARN, the others by their names."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from karri.db.engine import Database

from . import models
from .policies import customer_policy
from .store import get
from .users import check_tags

Tagged = models.IamUser | models.IamRole | models.IamManagedPolicy | models.IamInstanceProfile


def _by_name(model: type[Any]) -> Callable[[Session, str, str], Tagged]:
    return lambda session, account_id, name: get(session, model, account_id, name)


# kind -> (session, account_id, name or ARN) -> the row
TAGGED: dict[str, Callable[[Session, str, str], Tagged]] = {
    "user": _by_name(models.IamUser),
    "role": _by_name(models.IamRole),
    "policy": customer_policy,
    "instance-profile": _by_name(models.IamInstanceProfile),
}


class EntityTags:
    def __init__(self, db: Database, changed: Callable[[], None]) -> None:
        """``changed()``: tags moved (a policy may ask about ``aws:PrincipalTag``)."""
        self.db = db
        self.changed = changed

    def tags(self, kind: str, account_id: str, name: str) -> dict[str, str]:
        with self.db.session() as session:
            return json.loads(TAGGED[kind](session, account_id, name).tags)

    def change(
        self,
        kind: str,
        account_id: str,
        name: str,
        add: Mapping[str, str] | None = None,
        remove: Sequence[str] = (),
    ) -> None:
        """Add or overwrite ``add``, drop the keys ``remove``: at most 50 remain."""
        with self.db.write_session() as session:
            row = TAGGED[kind](session, account_id, name)
            kept = {k: v for k, v in json.loads(row.tags).items() if k not in remove}
            row.tags = json.dumps(check_tags({**kept, **(add or {})}))
        self.changed()
