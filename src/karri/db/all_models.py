"""Imports every component's models so that Base.metadata knows all tables.

``COUNTED`` names the tables `karri status` counts (each component adds its own).
"""

from typing import Any

from karri.cloud.instances import models as instance_models
from karri.db import models

COUNTED: dict[str, Any] = {
    "key pairs": models.KeyPair,
    "instances": instance_models.Instance,
}
