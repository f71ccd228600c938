"""Example apps users copy: each a small package built from graph/ and agents/."""
