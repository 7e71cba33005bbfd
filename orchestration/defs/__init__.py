"""One module per integration; `load_from_defs_folder` assembles them into the code location."""
