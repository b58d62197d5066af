"""Model builders, one family per file. Every module here is imported by the registry on first use."""
