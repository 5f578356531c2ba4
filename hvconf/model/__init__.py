"""hvconf.model: the pydantic IR of a guest and the target knowledge base it is checked against."""
