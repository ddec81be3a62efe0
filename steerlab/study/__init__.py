"""TOML study files -> validated, frozen settings (every error names the file, the key and what was expected)."""
