"""Trading: instruments, orders and their lifecycle, from placement to fill."""
