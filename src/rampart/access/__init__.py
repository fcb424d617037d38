"""Access: roles, permissions, grants; every check decided here and audited."""
