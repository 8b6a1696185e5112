"""Faust wiring: the app and its agents. Each agent decodes, calls the pure core, and sends."""
