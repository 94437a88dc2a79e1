"""The database: the connection's life, the SQL, and the migrations that shape it."""
