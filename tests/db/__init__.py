"""The connection, the SQL, migrations, faults and the pooler, on real servers."""
