"""The residents' self-service portal: public pages, report a problem, and /my/."""
