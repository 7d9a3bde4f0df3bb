"""Who may do what: bearer tokens and JWTs (auth), and per-owner access to jobs and artifacts."""
