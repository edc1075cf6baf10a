"""The cloud controller: one object that holds every CLC service."""

from __future__ import annotations

from karri.cloud.accounts import Accounts, Credentials
from karri.cloud.instances.service import Instances
from karri.cloud.keypairs import KeyPairs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.cloud.vmtypes import VmTypes
from karri.config import Settings
from karri.db.engine import Database
from karri.walrus import Walrus


class Cloud:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.accounts = Accounts(db)
        self.tags = Tags(db)
        self.keypairs = KeyPairs(db, self.tags)
        self.vmtypes = VmTypes(db)
        self.geography = Geography(settings)
        self.walrus = Walrus(db, settings.data_dir / "walrus")
        self.instances = Instances(
            settings, db, self.tags, self.vmtypes, self.keypairs, self.geography
        )

    def bootstrap(self) -> Credentials:
        """Everything a first start creates; a no-op afterwards. Returns the admin's keys."""
        self.vmtypes.ensure_defaults()
        return self.accounts.ensure_admin()
