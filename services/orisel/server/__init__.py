"""Process launchers: front-end services, the controller, workers, embedded mode."""
