"""Command-line client: argument parsing, local (embedded) runs, and remote calls over gRPC."""
