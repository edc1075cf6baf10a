"""karri: an AWS-compatible private cloud, a re-creation of Eucalyptus."""

__version__ = "0.1.0"
