"""Agents: the Agent definition and how one agent turn runs through the provider layer."""
