"""AWS request authentication (Signature Version 4 and 2), shared by the EC2 and S3 APIs."""
