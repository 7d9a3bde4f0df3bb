"""`python -m orisel.training`: the training gRPC service (same as `orisel serve training`)."""

from orisel.client.cli import main

raise SystemExit(main(["serve", "training"]))
