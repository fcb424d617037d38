"""Identity: accounts, passwords, tokens, browser sessions, devices and multi-factor auth."""
