"""URL rules whose URL builders are compiled on first use instead of at start-up.

Werkzeug compiles two URL-building functions per route (generating and `exec`ing Python source)
as each route is registered. That is about a millisecond per route, paid in Lambda's init phase
for every cold start, while this API builds URLs only for `Location` and `Link` headers, and only
for two of its routes. Matching is unchanged: only the builders wait until `url_for` needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule


class LazyBuildRule(Rule):
    """A Rule that compiles each URL builder the first time a URL is built with it."""

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        compiled: list[Callable[..., tuple[str, str]]] = []

        def build(rule: Rule, **values: Any) -> tuple[str, str]:
            if not compiled:
                compiled.append(Rule._compile_builder(rule, append_unknown))
            return compiled[0](rule, **values)

        return build
