"""The `lakehouse` command-line interface, installed under the import name `lakehouse_cli`.

A thin front end: every command opens the lakehouse, makes one public library call and turns
`lakehouse.Error` into one clear line on stderr. See `lakehouse_cli.app`.
"""
