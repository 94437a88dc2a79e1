"""The API's contract, through real Lambda events against a real PostgreSQL."""
