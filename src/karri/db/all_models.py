"""Imports every component's models so that Base.metadata knows all tables.

``COUNTED`` names the tables `karri status` counts (each component adds its own).
"""

from typing import Any

from karri.db import models

COUNTED: dict[str, Any] = {"key pairs": models.KeyPair}
