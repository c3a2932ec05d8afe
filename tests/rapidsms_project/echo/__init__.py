"""The echo app: replies "echo: <text>" to every message."""
