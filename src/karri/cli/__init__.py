"""The `karri` command (Eucalyptus's euca2ools admin side and euctl)."""
