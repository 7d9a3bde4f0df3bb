"""The job control plane: the job database, leases and fencing, the controller, Celery."""
