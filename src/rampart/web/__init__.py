"""The HTTP edge: app factory, error mapping, middleware, shared dependencies, pages."""
