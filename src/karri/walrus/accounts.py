"""Account-wide S3 settings (s3control's public access block), cached per process like
bucket records: a change bumps a counter every process watches (``shared.SharedCounter``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from karri.db.engine import Database
from karri.walrus.models import AccountConfig
from karri.walrus.shared import SharedCounter, WriteLock

TTL = 2.0  # seconds a cached record is trusted, unless a change says otherwise


class AccountConfigs:
    """``Walrus.account_config`` / ``configure_account``."""

    def __init__(self, db: Database, root: Path, writing: WriteLock) -> None:
        self._db = db
        self._writing = writing
        self._changes = SharedCounter(root / "account-changes")
        self._seen = self._changes.value()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, account: str, name: str) -> Any:
        """One setting of ``account``, or None."""
        now = time.monotonic()
        changes = self._changes.value()
        if changes != self._seen:
            self._cache.clear()
            self._seen = changes
        cached = self._cache.get(account)
        if cached is None or cached[0] <= now:
            with self._db.session() as session:
                row = session.get(AccountConfig, account)
                configs = dict(row.configs) if row is not None else {}
            if len(self._cache) > 10_000:
                self._cache.clear()
            cached = (now + TTL, configs)
            self._cache[account] = cached
        return cached[1].get(name)

    def fresh(self, account: str) -> bool:
        """Whether ``get`` would answer from the cache, without the database."""
        cached = self._cache.get(account)
        return (
            self._changes.value() == self._seen
            and cached is not None
            and cached[0] > time.monotonic()
        )

    def configure(self, account: str, name: str, value: Any) -> None:
        """Set one setting, or remove it with ``None``."""
        with self._writing, self._db.write_session() as session:
            row = session.get(AccountConfig, account)
            configs = dict(row.configs) if row is not None else {}
            if value is None:
                configs.pop(name, None)
            else:
                configs[name] = value
            if row is None:
                if configs:
                    session.add(AccountConfig(account=account, configs=configs))
            elif configs:
                row.configs = configs
            else:
                session.delete(row)
        self._cache.clear()
        self._changes.bump()
