-- The queue table exactly as gearmand 1.1.20's libpq plugin creates it.
-- {table} is replaced with the (quoted) table name. Its replay misreads the INTEGER
-- priority and when_to_run (every job HIGH and due now after a restart): queuetool
-- creates tables with those two columns as TEXT instead (dialects/postgresql.py).
CREATE TABLE {table} (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))
