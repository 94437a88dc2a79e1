"""Property tests and fuzzing from the OpenAPI document."""
