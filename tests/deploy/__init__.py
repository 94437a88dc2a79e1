"""The artifact, the template, the deploy and its custom resource, offline."""
