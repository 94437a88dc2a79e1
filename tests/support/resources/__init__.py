"""Resources declared only for the tests, the way the README's "Adding a resource" says."""
