"""Device profiles as data: one TOML file per supported device model.

Loaded and validated by :mod:`device_drivers.profiles`; ``README.md`` in this folder
documents the keys and how to add a model. A package only so the files ship in the wheel.
"""
