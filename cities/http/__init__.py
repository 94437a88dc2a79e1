"""The HTTP face of the API: views, paging, conditional requests, auth, errors, docs."""
