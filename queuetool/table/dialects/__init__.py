"""What differs between the SQLite and the MySQL queue, one small module each."""
