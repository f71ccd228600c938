"""Endpoints this machine can start itself: the fleet simulator and the embedded model."""
