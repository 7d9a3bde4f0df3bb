"""ArtifactService: stat, download, upload and list the artifact store through the API."""
