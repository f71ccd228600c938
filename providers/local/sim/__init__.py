"""The fleet simulator: an OpenAI-compatible server that simulates GPU replicas on loopback."""
