"""The local cloud: Cloud Storage and Healthcare API emulators.

It lives beside the engine, not inside it: nothing outside ``bulkmover.emulator`` imports it.
"""
