"""One module per schema revision of the sink database; never edit a released one."""
