"""The gearmand that owns a queue: the admin protocol, finding the daemon and its
queue, the running guard, stopping and starting it, and verifying a reload."""
