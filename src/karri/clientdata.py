"""Client data that lets stock AWS clients reach karri's s3control API.

botocore's s3control endpoint rules put ``<AccountId>.`` in front of a custom endpoint's
host (``http://123456789012.127.0.0.1:8773``), a name no resolver knows; turning off
host-prefix injection (``AWS_DISABLE_HOST_PREFIX_INJECTION``) does not help, since the
prefix comes from the rule set, not the model's ``hostPrefix``. botocore (and so boto3 and
the AWS CLI) looks for its data files first in the directories named by ``AWS_DATA_PATH``:
karri writes there a copy of the installed rule set whose custom-endpoint rule keeps the
host as given. Every other rule (AWS's own endpoints) is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.loaders

SERVICE = "s3control"
RULE_SET = "endpoint-rule-set-1"
PREFIXED = "{url#scheme}://{AccountId}.{url#authority}{url#path}"
AS_GIVEN = "{url#scheme}://{url#authority}{url#path}"


def _unprefixed(node: Any) -> Any:
    """The rule set with each custom-endpoint URL that prefixes the account made plain."""
    if isinstance(node, dict):
        return {key: _unprefixed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unprefixed(value) for value in node]
    return AS_GIVEN if node == PREFIXED else node


def write_client_data(data_dir: Path) -> Path:
    """Writes the s3control rule set under ``data_dir/aws-data``; returns that directory,
    the value for ``AWS_DATA_PATH``."""
    loader = botocore.loaders.Loader()
    version = loader.determine_latest_version(SERVICE, RULE_SET)
    rules = loader.load_service_model(SERVICE, RULE_SET, version)
    root = data_dir / "aws-data"
    target = root / SERVICE / version / f"{RULE_SET}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_unprefixed(rules))
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(target)
    return root
