"""Helpers the tests (and the benchmark) share: servers, events, clusters."""
