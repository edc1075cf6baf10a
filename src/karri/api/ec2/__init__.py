"""The EC2 Query API, driven by botocore's EC2 service model."""
