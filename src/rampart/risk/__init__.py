"""Risk: the pre-trade check pipeline, trading states, halts and the kill switch."""
