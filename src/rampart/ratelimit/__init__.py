"""Rate limits: GCRA limiters named by action and scope, in-process and Redis backends."""
