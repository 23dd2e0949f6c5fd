"""Built-in functions usable in expressions. Importing this package registers them."""

from lakehouse.functions import strings  # noqa: F401  (registers the str.* functions)
