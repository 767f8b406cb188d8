"""The Cobot API: client, typed errors, rate limiter, and the simulated server (sim)."""
