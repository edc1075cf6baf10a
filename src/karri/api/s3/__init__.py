"""The S3 API in front of Walrus."""
