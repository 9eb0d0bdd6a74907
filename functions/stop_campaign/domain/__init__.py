"""The rules, in plain Python: data shapes, intake, planning, decisions, outcomes. No I/O, no AWS, no HTTP
(tests/unit/test_layers.py keeps it so)."""
