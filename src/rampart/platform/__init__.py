"""Infrastructure every domain stands on: database, unit of work, keys, cache, logging."""
