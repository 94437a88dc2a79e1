"""Resources declared only for the tests, the way docs/extending.md, "Adding a resource", says."""
