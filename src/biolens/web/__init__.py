"""The local web app (`biolens serve`): pages over the same engine as the CLI."""
