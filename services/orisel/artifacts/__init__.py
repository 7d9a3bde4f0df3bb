"""ArtifactService: the artifact store through the API."""
