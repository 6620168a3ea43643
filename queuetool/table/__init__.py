"""The queue table: the store and its backends, the job filter, and what reads rows
(report, jobs, check, checksum, export)."""
