"""Process runtime: settings from the environment, Prometheus metrics, local paths."""
