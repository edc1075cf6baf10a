"""EBS on the cloud side: volumes, attachments and snapshots (kept in Walrus)."""
