"""Configuration, command line and process lifecycle."""
