"""A module next to sys_path.py, importable because AML_APP_ROOT is on sys.path."""

VALUE = "helper imported"
