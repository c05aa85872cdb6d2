"""The engine every face (CLI, web app, Python API) calls: the task registry and the one run lifecycle."""
