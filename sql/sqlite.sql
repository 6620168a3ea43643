-- The queue table exactly as gearmand 1.1.20's libsqlite3 plugin creates it.
-- {table} is replaced with the (quoted) table name.
CREATE TABLE {table} ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))
