"""Venue: the built-in price-time priority matching engine and the `Venue` interface."""
