"""gRPC plumbing: the server and its interceptors, the job service, protos to specs."""
