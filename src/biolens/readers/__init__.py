"""Readers turn a user's files into arrays plus ids, labels and groups; all input validation lives here."""
