"""The cloud's nodes (Eucalyptus's node controllers on other hosts): their identity (a CA
of the cloud's own, certificates from one-time join tokens), their registry and state."""
