"""HTTP plumbing that domain routers build on: problem+json, access declarations, dependencies.

It sits below the domains so that each domain's `api.py` can use it; the app factory in
`rampart.web` assembles the routers on top.
"""
