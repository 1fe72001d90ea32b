"""The tools around the pipeline, apart from its core: `make demo` (`demo`), `make sql` (`sql_shell`)
and `make bench` (`bench`). The pipeline never imports them."""
