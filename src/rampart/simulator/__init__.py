"""Simulator: liquidity-providing and noise-trading agents for the demo market."""
