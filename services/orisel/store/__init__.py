"""The artifact store (local folder or S3, conditional writes) and scratch files beside it."""
