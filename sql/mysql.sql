-- The queue table exactly as gearmand 1.1.20's MySQL plugin creates it.
-- {table} is replaced with the (quoted) table name.
CREATE TABLE {table} (unique_key VARCHAR(64), function_name VARCHAR(255), priority INT, data LONGBLOB, when_to_run INT, unique key (unique_key, function_name))
