"""Pure building blocks every layer may use: clock, ids, money, errors, secrets.

Nothing here imports a database driver, a web framework or anything outside the standard library.
"""
