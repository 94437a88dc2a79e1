"""Running it: settings, secrets, the deploy-time custom resource, the local server."""
