"""Every stand-in call is appended here as (name, details) for tests to assert on."""
calls: list = []
interrupted = {"value": False}


def record(name, **details):
    calls.append((name, details))


def reset():
    calls.clear()
    interrupted["value"] = False
